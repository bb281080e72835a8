/// Everything `pagoda proxy` needs, built and validated once by the command line.
public struct ProxyConfiguration: Sendable {
    public var host: String = "127.0.0.1"
    public var port: Int = 8000
    public var backends: [BackendAddress]
    public var policy: BalancingPolicy = .leastCost
    public var affinity: CacheAffinityBounds = .init()
    /// Prompt-prefix block for cache-aware routing, in UTF-8 bytes (or tokens when token ids are known).
    public var prefixBlockSize: Int = 64
    public var cost: RequestCost = .init()
    /// Seconds between health probes of each backend (`GET /health`), and each probe's time limit.
    public var healthCheckInterval: Double = 1.0
    public var healthCheckTimeout: Double = 2.0
    /// Failed probes in a row before a backend is taken out of rotation.
    public var unhealthyAfterFailedProbes: Int = 2
    /// Attempts per request, each on a different backend (a failed attempt before any byte reached the client is retried).
    public var maxAttempts: Int
    /// Seconds a request to a backend may take in total (streaming included), and to connect.
    public var requestTimeout: Double = 3600
    public var connectTimeout: Double = 5
    /// Largest request / non-streamed response body passed through.
    public var maxBodyBytes: Int = 64 << 20

    public init(backends: [BackendAddress]) {
        self.backends = backends
        self.maxAttempts = backends.count
    }

    /// Throws naming the flag of the first bad value.
    public func validate() throws {
        if backends.isEmpty { throw RouterConfigError.noBackends }
        if !(0...65535).contains(port) {
            throw RouterConfigError.invalidValue(flag: "--port", value: "\(port)", reason: "must be in 0...65535")
        }
        if !(healthCheckInterval > 0) {
            throw RouterConfigError.invalidValue(flag: "--health-check-interval", value: "\(healthCheckInterval)", reason: "must be > 0")
        }
        if !(healthCheckTimeout > 0) {
            throw RouterConfigError.invalidValue(flag: "--health-check-timeout", value: "\(healthCheckTimeout)", reason: "must be > 0")
        }
        if maxAttempts < 1 {
            throw RouterConfigError.invalidValue(flag: "--max-retries", value: "\(maxAttempts - 1)", reason: "must be >= 0")
        }
        if !(0...1).contains(affinity.cacheThreshold) {
            throw RouterConfigError.invalidValue(flag: "--cache-threshold", value: "\(affinity.cacheThreshold)", reason: "must be in 0...1")
        }
        if !(affinity.balanceRelThreshold >= 1) {
            throw RouterConfigError.invalidValue(
                flag: "--balance-rel-threshold", value: "\(affinity.balanceRelThreshold)", reason: "must be >= 1")
        }
        if !(affinity.balanceAbsThreshold >= 0) {
            throw RouterConfigError.invalidValue(
                flag: "--balance-abs-threshold", value: "\(affinity.balanceAbsThreshold)", reason: "must be >= 0")
        }
        if prefixBlockSize < 1 {
            throw RouterConfigError.invalidValue(flag: "--prefix-block-size", value: "\(prefixBlockSize)", reason: "must be >= 1")
        }
        if !(requestTimeout > 0) {
            throw RouterConfigError.invalidValue(flag: "--request-timeout", value: "\(requestTimeout)", reason: "must be > 0")
        }
    }
}
