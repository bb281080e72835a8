import Foundation
import PagodaEngine
import Prometheus

/// The server's Prometheus metrics under vLLM's names (`vllm/v1/metrics/loggers.py`), so vLLM
/// dashboards and routers read `/metrics` unchanged. Every series carries `model_name` and
/// `engine` (the data-parallel rank) labels, as vLLM's do.
public final class ServerMetrics: @unchecked Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let modelName: String
    /// The rank of a single engine (external load balancing labels its one engine with its rank).
    private let defaultRank: Int
    private let lock = NSLock()

    /// One engine's series: scheduler gauges and counters from its statistics, and the per-request histograms
    /// of the requests it served.
    private final class EngineSeries {
        let labels: [(String, String)]
        let running: Gauge, waiting: Gauge, kvUsage: Gauge, up: Gauge
        let prefixQueries: Counter, prefixHits: Counter, preemptions: Counter
        let promptTokens: Counter, generationTokens: Counter
        var success: [String: Counter] = [:]
        let ttft: ValueHistogram, tpot: ValueHistogram, interToken: ValueHistogram, e2e: ValueHistogram
        let promptLen: ValueHistogram, generationLen: ValueHistogram
        /// Last cumulative engine counters seen (the engine reports totals; Prometheus counters only go up).
        var lastStats = SchedulerStats()
        let registry: PrometheusCollectorRegistry
        let kvTransfer: KVTransferMetrics
        /// Created with the first statistics that carry expert-parallel counters.
        var expertParallel: ExpertParallelMetrics?

        init(registry: PrometheusCollectorRegistry, labels: [(String, String)]) {
            self.registry = registry
            self.labels = labels
            func d(_ name: String, _ help: String) -> MetricNameDescriptor {
                MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
            }
            running = registry.makeGauge(descriptor: d("vllm:num_requests_running", "Number of requests in model execution batches."), labels: labels)
            waiting = registry.makeGauge(descriptor: d("vllm:num_requests_waiting", "Number of requests waiting to be processed."), labels: labels)
            kvUsage = registry.makeGauge(descriptor: d("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."), labels: labels)
            up = registry.makeGauge(descriptor: d("pagoda:engine_up", "1 while the engine core (data-parallel rank) serves, 0 once it is down."), labels: labels)
            prefixQueries = registry.makeCounter(descriptor: d("vllm:prefix_cache_queries_total", "Prefix cache queries, in terms of number of queried tokens."), labels: labels)
            prefixHits = registry.makeCounter(descriptor: d("vllm:prefix_cache_hits_total", "Prefix cache hits, in terms of number of cached tokens."), labels: labels)
            preemptions = registry.makeCounter(descriptor: d("vllm:num_preemptions_total", "Cumulative number of preemptions from the engine."), labels: labels)
            promptTokens = registry.makeCounter(descriptor: d("vllm:prompt_tokens_total", "Number of prefill tokens processed."), labels: labels)
            generationTokens = registry.makeCounter(descriptor: d("vllm:generation_tokens_total", "Number of generation tokens processed."), labels: labels)
            ttft = registry.makeValueHistogram(descriptor: d("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds."), labels: labels, buckets: ServerMetrics.latencyBuckets)
            tpot = registry.makeValueHistogram(descriptor: d("vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds."), labels: labels, buckets: ServerMetrics.latencyBuckets)
            interToken = registry.makeValueHistogram(descriptor: d("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds."), labels: labels, buckets: ServerMetrics.latencyBuckets)
            e2e = registry.makeValueHistogram(descriptor: d("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds."), labels: labels, buckets: ServerMetrics.e2eBuckets)
            promptLen = registry.makeValueHistogram(descriptor: d("vllm:request_prompt_tokens", "Number of prefill tokens processed."), labels: labels, buckets: ServerMetrics.tokenBuckets)
            generationLen = registry.makeValueHistogram(descriptor: d("vllm:request_generation_tokens", "Number of generation tokens processed."), labels: labels, buckets: ServerMetrics.tokenBuckets)
            kvTransfer = KVTransferMetrics(registry: registry, labels: labels)
            up.set(Double(1))
            for reason in ["stop", "length", "abort", "error"] { _ = successCounter(reason) }
        }

        func successCounter(_ reason: String) -> Counter {
            if let c = success[reason] { return c }
            let c = registry.makeCounter(
                descriptor: MetricNameDescriptor(metricName: "vllm:request_success_total", unitName: "", helpText: "Count of successfully processed requests."),
                labels: labels + [("finished_reason", reason)])
            success[reason] = c
            return c
        }
    }
    private var series: [Int: EngineSeries] = [:]
    /// Requests finished by this API-server process, when it is one of several (`--api-server-count K`).
    private var apiServerRequests: Counter?

    static let latencyBuckets: [Double] = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0]
    static let tokenBuckets: [Double] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000]
    static let e2eBuckets: [Double] = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0]

    /// `dataParallelRank`: the label of the engine when there is one (external load balancing); with several
    /// engines behind this server (`engineRanks`) each gets its own series, labelled `engine="r"`.
    public init(modelName: String, dataParallelRank: Int = 0, engineRanks: [Int]? = nil) {
        self.modelName = modelName
        defaultRank = dataParallelRank
        for r in engineRanks ?? [dataParallelRank] { _ = engine(r) }
    }

    /// Names this process as API server `index` of `count` (`pagoda serve --api-server-count K`): adds
    /// `pagoda:api_server_info{api_server="k",api_server_count="K",pid="…"} 1` and
    /// `pagoda:api_server_requests_total{api_server="k"}` (engine requests this process finished), so a
    /// scrape shows which of the processes sharing the port answered it.
    public func labelAPIServer(index: Int, count: Int, pid: Int) {
        lock.lock(); defer { lock.unlock() }
        let info = registry.makeGauge(
            descriptor: MetricNameDescriptor(metricName: "pagoda:api_server_info", unitName: "", helpText: "This API-server process (one of --api-server-count)."),
            labels: [("api_server", String(index)), ("api_server_count", String(count)), ("pid", String(pid))])
        info.set(Double(1))
        apiServerRequests = registry.makeCounter(
            descriptor: MetricNameDescriptor(metricName: "pagoda:api_server_requests_total", unitName: "", helpText: "Engine requests finished by this API-server process."),
            labels: [("api_server", String(index))])
    }

    /// The series of engine `rank` (created on first use). Call with `lock` held.
    private func engine(_ rank: Int) -> EngineSeries {
        if let s = series[rank] { return s }
        let s = EngineSeries(registry: registry, labels: [("model_name", modelName), ("engine", String(rank))])
        series[rank] = s
        return s
    }

    /// Updates engine `rank`'s scheduler gauges and cumulative counters from its statistics.
    public func record(stats s: SchedulerStats, rank: Int? = nil) {
        lock.lock(); defer { lock.unlock() }
        let e = engine(rank ?? defaultRank)
        e.running.set(Double(s.numRunning))
        e.waiting.set(Double(s.numWaiting))
        e.kvUsage.set(s.kvCacheUsage)
        func delta(_ now: Int, _ before: Int) -> Int64 { Int64(now >= before ? now - before : now) }
        let dq = delta(s.prefixCacheQueries, e.lastStats.prefixCacheQueries)
        let dh = delta(s.prefixCacheHits, e.lastStats.prefixCacheHits)
        let dp = delta(s.numPreemptions, e.lastStats.numPreemptions)
        if dq > 0 { e.prefixQueries.increment(by: dq) }
        if dh > 0 { e.prefixHits.increment(by: dh) }
        if dp > 0 { e.preemptions.increment(by: dp) }
        e.kvTransfer.record(s.kvTransfer)
        if let ep = s.expertParallel {
            if e.expertParallel == nil { e.expertParallel = ExpertParallelMetrics(registry: e.registry, labels: e.labels) }
            e.expertParallel!.record(ep)
        }
        e.lastStats = s
    }

    /// Marks engine `rank` up or down (`pagoda:engine_up`).
    public func record(rank: Int, up: Bool) {
        lock.lock(); defer { lock.unlock() }
        engine(rank).up.set(Double(up ? 1 : 0))
    }

    /// Records one finished engine request (one choice), under the engine that served it.
    public func record(request r: RequestTiming) {
        lock.lock(); defer { lock.unlock() }
        let e = engine(r.rank ?? defaultRank)
        e.promptTokens.increment(by: Int64(r.promptTokens))
        e.generationTokens.increment(by: Int64(r.generationTokens))
        e.promptLen.record(Double(r.promptTokens))
        e.generationLen.record(Double(r.generationTokens))
        e.successCounter(r.finishReason).increment()
        if let first = r.firstTokenTime {
            e.ttft.record(first - r.arrivalTime)
            if r.generationTokens > 1, let last = r.lastTokenTime {
                let perToken = (last - first) / Double(r.generationTokens - 1)
                e.tpot.record(perToken)
                e.interToken.record(perToken)
            }
        }
        e.e2e.record(r.finishTime - r.arrivalTime)
        apiServerRequests?.increment()
    }

    /// Prometheus text exposition of every metric.
    public func exposition() -> String {
        lock.lock(); defer { lock.unlock() }
        return registry.emitToString()
    }
}

/// Timestamps and counts of one engine request, for the latency histograms.
public struct RequestTiming: Sendable {
    public var arrivalTime: Double
    public var firstTokenTime: Double?
    public var lastTokenTime: Double?
    public var finishTime: Double
    public var promptTokens: Int
    public var generationTokens: Int
    public var finishReason: String
    /// The data-parallel rank that served it (nil: the server's one engine).
    public var rank: Int? = nil
}
