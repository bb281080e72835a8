/// The API server's own settings (the engine's are in `EngineConfig`, in the engine core process).
public struct ServerConfig: Sendable {
    public var host: String = "127.0.0.1"
    public var port: Int = 8000
    /// Names clients may use in `model`; the first is the one `/v1/models` and responses report.
    public var servedModelNames: [String]
    /// The model folder (what `/v1/models` reports as `root`).
    public var modelPath: String
    /// When set, every `/v1/*` request needs `Authorization: Bearer <apiKey>`.
    public var apiKey: String?
    public var disableLogRequests: Bool = false
    /// With `apiKey`: also `/health`, `/ping`, `/metrics`, `/load` and `/version` need the key (`--api-key-all-routes`).
    public var apiKeyAllRoutes: Bool = false
    /// Larger request bodies get 413 (`--max-request-body-bytes`).
    public var maxRequestBodyBytes: Int = 8 << 20
    /// Generation requests held at once; more get 429 with `Retry-After` (`--max-concurrent-requests`; 0: no limit).
    public var maxConcurrentRequests: Int = 4096
    /// On SIGTERM/SIGINT: seconds to let in-flight requests finish while new ones get 503 (`--shutdown-timeout`,
    /// vLLM's; 0: abort them at once).
    public var shutdownTimeoutSeconds: Double = 0
    /// External data parallelism: this server is rank `dataParallelRank` of `dataParallelSize`.
    public var dataParallelRank: Int = 0
    public var dataParallelSize: Int = 1
    public var version: String = PagodaVersion.current

    public init(servedModelNames: [String], modelPath: String) {
        self.servedModelNames = servedModelNames; self.modelPath = modelPath
    }

    public var primaryModelName: String { servedModelNames.first ?? modelPath }
}

public enum PagodaVersion {
    public static let current = "0.1.0"
}
