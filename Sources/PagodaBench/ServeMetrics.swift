/// The per-metric summary: mean, median, standard deviation and the selected percentiles, in milliseconds.
public struct MetricSummary: Sendable {
    public var meanMs: Double
    public var medianMs: Double
    public var stdMs: Double
    /// (percentile, value in ms) for each `--metric-percentiles` entry, in order.
    public var percentilesMs: [(Double, Double)]

    public init(seconds values: [Double], percentiles: [Double]) {
        meanMs = ServeStatistics.mean(values) * 1000
        medianMs = ServeStatistics.median(values) * 1000
        stdMs = ServeStatistics.std(values) * 1000
        percentilesMs = percentiles.map { ($0, ServeStatistics.percentile(values, $0) * 1000) }
    }
}

/// The benchmark's aggregate results (vLLM's `BenchmarkMetrics`), computed from every request's output.
public struct BenchmarkMetrics: Sendable {
    public var completed = 0
    public var failed = 0
    public var totalInput = 0
    public var totalOutput = 0
    public var requestThroughput = 0.0
    public var requestGoodput = 0.0
    public var outputThroughput = 0.0
    public var totalTokenThroughput = 0.0
    public var ttft: MetricSummary
    public var tpot: MetricSummary
    public var itl: MetricSummary
    public var e2el: MetricSummary
    public var clientQueueTime: MetricSummary
    public var e2elIncludingClientQueue: MetricSummary
    /// The most output tokens received in any one-second bucket, and the most requests in flight at once.
    public var maxOutputTokensPerS = 0.0
    public var maxConcurrentRequests = 0
    /// Output length of every request (0 for a failed one), in request order.
    public var actualOutputLens: [Int] = []

    /// The metrics `--percentile-metrics` may name.
    public static let metricNames = ["ttft", "tpot", "itl", "e2el", "client_queue_time", "e2el_including_client_queue"]
    /// The service-level objectives `--goodput` may name.
    public static let goodputNames = ["ttft", "tpot", "e2el"]

    public func summary(_ name: String) -> MetricSummary? {
        switch name {
        case "ttft": return ttft
        case "tpot": return tpot
        case "itl": return itl
        case "e2el": return e2el
        case "client_queue_time": return clientQueueTime
        case "e2el_including_client_queue": return e2elIncludingClientQueue
        default: return nil
        }
    }

    /// Computes the metrics as vLLM's `calculate_metrics` does.
    ///
    /// A successful request's output length is the server's `usage.completion_tokens` when it reported one,
    /// otherwise the tokenizer's count of the generated text (no special tokens). TPOT is
    /// (latency − TTFT)/(output − 1) over requests with more than one output token. Goodput counts requests that
    /// meet every `--goodput` objective (given in ms).
    public static func calculate(
        outputs: [RequestFuncOutput], duration: Double, tokenizer: BenchTokenizer?, percentiles: [Double],
        goodput: [String: Double]
    ) -> BenchmarkMetrics {
        var outputLens: [Int] = []
        var totalInput = 0
        var completed = 0
        var itls: [Double] = []
        var tpots: [Double] = []
        var allTpots: [Double] = []
        var ttfts: [Double] = []
        var e2els: [Double] = []
        var queueTimes: [Double] = []
        for output in outputs {
            guard output.success else {
                outputLens.append(0)
                continue
            }
            var outputLen = output.outputTokens ?? 0
            if output.outputTokens == nil {
                outputLen = tokenizer?.encode(output.generatedText, addSpecialTokens: false).count ?? 1
            }
            outputLens.append(outputLen)
            totalInput += output.promptLen
            var tpot = 0.0
            if outputLen > 1 {
                tpot = (output.latency - output.ttft) / Double(outputLen - 1)
                tpots.append(tpot)
            }
            allTpots.append(tpot)
            itls += output.itl
            ttfts.append(output.ttft)
            e2els.append(output.latency)
            queueTimes.append(output.clientQueueTime)
            completed += 1
        }

        var goodCompleted = 0
        if !goodput.isEmpty {
            for i in 0..<completed {
                var good = true
                if let slo = goodput["ttft"], ttfts[i] > slo / 1000 { good = false }
                if let slo = goodput["tpot"], allTpots[i] > slo / 1000 { good = false }
                if let slo = goodput["e2el"], e2els[i] > slo / 1000 { good = false }
                if good { goodCompleted += 1 }
            }
        }

        let totalOutput = outputLens.reduce(0, +)
        var metrics = BenchmarkMetrics(
            ttft: MetricSummary(seconds: ttfts, percentiles: percentiles),
            tpot: MetricSummary(seconds: tpots, percentiles: percentiles),
            itl: MetricSummary(seconds: itls, percentiles: percentiles),
            e2el: MetricSummary(seconds: e2els, percentiles: percentiles),
            clientQueueTime: MetricSummary(seconds: queueTimes, percentiles: percentiles),
            e2elIncludingClientQueue: MetricSummary(
                seconds: zip(e2els, queueTimes).map { $0 + $1 }, percentiles: percentiles))
        metrics.completed = completed
        metrics.failed = outputs.count - completed
        metrics.totalInput = totalInput
        metrics.totalOutput = totalOutput
        metrics.requestThroughput = Double(completed) / duration
        metrics.requestGoodput = Double(goodCompleted) / duration
        metrics.outputThroughput = Double(totalOutput) / duration
        metrics.totalTokenThroughput = Double(totalInput + totalOutput) / duration
        metrics.actualOutputLens = outputLens
        (metrics.maxOutputTokensPerS, metrics.maxConcurrentRequests) = peaks(outputs.filter(\.success))
        return metrics
    }

    /// Peak output tokens in a one-second bucket (token times from TTFT and the ITLs) and the peak number of
    /// requests in flight (a sweep over half-open [start, end) intervals, ends before starts on ties).
    static func peaks(_ successful: [RequestFuncOutput]) -> (Double, Int) {
        guard let minStart = successful.map(\.startTime).min() else { return (0, 0) }
        let maxEnd = successful.map { $0.startTime + $0.latency }.max()!
        let buckets = Int((maxEnd - minStart).rounded(.up)) + 1
        var tokensPerSecond = [Double](repeating: 0, count: buckets)
        for output in successful {
            var t = output.startTime + output.ttft
            var times = [t]
            for gap in output.itl {
                t += gap
                times.append(t)
            }
            for time in times {
                let bucket = Int(time - minStart)
                if bucket >= 0 && bucket < buckets { tokensPerSecond[bucket] += 1 }
            }
        }
        var events: [(Double, Int)] = []
        for output in successful {
            events.append((output.startTime, 1))
            events.append((output.startTime + output.latency, -1))
        }
        events.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        var current = 0
        var peak = 0
        for (_, delta) in events {
            current += delta
            peak = max(peak, current)
        }
        return (tokensPerSecond.max() ?? 0, peak)
    }
}
