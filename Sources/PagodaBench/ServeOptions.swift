/// Everything `pagoda bench serve` was given, as typed values (the command line fills it, `ServeMain` runs it).
public struct ServeOptions: @unchecked Sendable {
    public var backend: ServeBackend = .openai
    /// `Authorization: Bearer` value (the command line reads `OPENAI_API_KEY`, as vLLM's benchmark does).
    public var apiKey: String?
    public var label: String?
    public var baseURL: String?
    public var host = "127.0.0.1"
    public var port = 8000
    public var endpoint: String?
    public var model: String?
    public var servedModelName: String?
    public var tokenizer: String?
    public var datasetName: DatasetName = .random
    public var datasetPath: String?
    public var numPrompts = 1000
    public var seed = 0
    public var randomInputLen = 1024
    public var randomOutputLen = 128
    public var randomRangeRatio = 0.0
    public var randomPrefixLen = 0
    public var sharegptOutputLen: Int?
    public var prefixRepetitionPrefixLen = 256
    public var prefixRepetitionSuffixLen = 256
    public var prefixRepetitionNumPrefixes = 10
    public var prefixRepetitionOutputLen = 128
    public var maxConcurrency: Int?
    public var requestRate: Double = .infinity
    public var burstiness = 1.0
    public var ignoreEOS = false
    public var percentileMetrics: String?
    public var metricPercentiles = "99"
    public var goodput: [String] = []
    public var saveResult = false
    public var resultDir: String?
    public var resultFilename: String?
    public var disableTqdm = false
    public var numWarmups = 0
    public var readyCheckTimeoutSec = 0
    public var requestIdPrefix = "bench-"
    public var extraBody: [String: Any] = [:]
    /// `--concurrency-sweep`: run once per level, one table and one JSON for all.
    public var concurrencySweep: [Int] = []
    /// Prompts per sweep level: a fixed count, or the level times a multiplier; else `--num-prompts`.
    public var promptsPerConcurrency: Int?
    public var promptsMultiplier: Int?

    public init() {}

    /// Scheme, host and port.
    public var resolvedBaseURL: String {
        if let baseURL { return baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL }
        let host = self.host.contains(":") && !self.host.hasPrefix("[") ? "[\(self.host)]" : self.host
        return "http://\(host):\(port)"
    }

    public var resolvedEndpoint: String { endpoint ?? backend.defaultEndpoint }

    /// Checks the flags that need no server or tokenizer; throws a one-line message naming the flag.
    public func validate() throws {
        if let maxConcurrency, maxConcurrency <= 0 { throw ServeBenchError("--max-concurrency must be greater than 0") }
        if numPrompts <= 0 { throw ServeBenchError("--num-prompts must be greater than 0") }
        if !(requestRate > 0) { throw ServeBenchError("--request-rate must be positive or inf") }
        if !(burstiness > 0) { throw ServeBenchError("--burstiness must be positive") }
        if !(0 <= randomRangeRatio && randomRangeRatio < 1) {
            throw ServeBenchError("--random-range-ratio must be in [0, 1), got \(randomRangeRatio)")
        }
        if datasetName == .sharegpt && datasetPath == nil {
            throw ServeBenchError("--dataset-name sharegpt needs --dataset-path (a ShareGPT JSON file)")
        }
        if datasetName != .sharegpt, let datasetPath {
            throw ServeBenchError(
                "Cannot use '\(datasetName.rawValue)' dataset with --dataset-path \(datasetPath); use --dataset-name sharegpt")
        }
        let endpoint = resolvedEndpoint
        let suffix = backend == .openai ? "completions" : "chat/completions"
        if !endpoint.hasSuffix(suffix) || (backend == .openai && endpoint.hasSuffix("chat/completions")) {
            throw ServeBenchError("--endpoint \(endpoint) does not fit --backend \(backend.rawValue): it must end with \(suffix)")
        }
        _ = try parsedPercentileMetrics()
        _ = try parsedMetricPercentiles()
        _ = try parsedGoodput()
        if concurrencySweep.contains(where: { $0 <= 0 }) {
            throw ServeBenchError("--concurrency-sweep levels must be positive integers")
        }
        if !concurrencySweep.isEmpty && maxConcurrency != nil {
            throw ServeBenchError("--concurrency-sweep sets the concurrency of each run; drop --max-concurrency")
        }
        if let promptsPerConcurrency, promptsPerConcurrency <= 0 {
            throw ServeBenchError("--prompts-per-concurrency must be greater than 0")
        }
        if let promptsMultiplier, promptsMultiplier <= 0 {
            throw ServeBenchError("--prompts-multiplier must be greater than 0")
        }
        if promptsPerConcurrency != nil && promptsMultiplier != nil {
            throw ServeBenchError("give either --prompts-per-concurrency or --prompts-multiplier, not both")
        }
    }

    public func parsedPercentileMetrics() throws -> [String] {
        let names = (percentileMetrics ?? "ttft,tpot,itl").split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        for name in names where !BenchmarkMetrics.metricNames.contains(name) {
            throw ServeBenchError(
                "--percentile-metrics: unknown metric '\(name)' (allowed: \(BenchmarkMetrics.metricNames.joined(separator: ", ")))")
        }
        return names
    }

    public func parsedMetricPercentiles() throws -> [Double] {
        try metricPercentiles.split(separator: ",").map {
            let text = $0.trimmingCharacters(in: .whitespaces)
            guard let p = Double(text), p >= 0, p <= 100 else {
                throw ServeBenchError("--metric-percentiles: '\(text)' is not a percentile between 0 and 100")
            }
            return p
        }
    }

    /// `--goodput ttft:500 tpot:50`: objectives in ms by metric.
    public func parsedGoodput() throws -> [String: Double] {
        var slos: [String: Double] = [:]
        for pair in goodput {
            let parts = pair.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, let value = Double(parts[1]) else {
                throw ServeBenchError(
                    "--goodput: '\(pair)' is not KEY:VALUE (a metric name and a number of milliseconds)")
            }
            let name = String(parts[0])
            guard BenchmarkMetrics.goodputNames.contains(name) else {
                throw ServeBenchError("--goodput: '\(name)' must be one of ttft, tpot, e2el")
            }
            guard value >= 0 else { throw ServeBenchError("--goodput: \(name) must not be negative") }
            slos[name] = value
        }
        return slos
    }
}

import Foundation
