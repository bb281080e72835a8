/// One benchmark run's settings, built and validated once by `pagoda bench serve`.
public struct ServeBenchmarkConfig: @unchecked Sendable {
    public var backend: ServeBackend = .openai
    /// `Authorization: Bearer` value sent with every request; nil: none.
    public var apiKey: String?
    /// Full URL requests are POSTed to (base URL + endpoint).
    public var apiURL: String
    /// Scheme, host and port, for `/v1/models`.
    public var baseURL: String
    /// `--model`: what the results name; also sent as `model` unless a served name is given.
    public var modelId: String
    /// `--served-model-name`: the name sent as `model` when it differs from `modelId`.
    public var modelName: String?
    public var requestRate: Double = .infinity
    public var burstiness: Double = 1
    public var maxConcurrency: Int?
    public var ignoreEOS = false
    public var disableProgress = false
    public var numWarmups = 0
    public var readyCheckTimeoutSeconds = 0.0
    /// `--percentile-metrics`, split.
    public var selectedPercentileMetrics = ["ttft", "tpot", "itl"]
    /// `--metric-percentiles`, parsed.
    public var selectedPercentiles: [Double] = [99]
    /// `--goodput` objectives in ms, by metric name.
    public var goodput: [String: Double] = [:]
    /// Sampling parameters and `--extra-body`, added to every request body.
    public var extraBody: [String: Any] = [:]
    public var seed: UInt64 = 0

    public init(apiURL: String, baseURL: String, modelId: String) {
        self.apiURL = apiURL
        self.baseURL = baseURL
        self.modelId = modelId
    }

    /// The `model` field of every request.
    public var requestModel: String { modelName ?? modelId }
}
