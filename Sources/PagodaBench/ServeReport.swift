import Foundation

/// The result block vLLM prints after a run and the result dictionary it saves, built from one run's metrics.
///
/// Lines are `{:<40} {:<10}` as in vLLM (label padded to 40, value padded to 10, trailing spaces included);
/// section titles are centred in 50 columns of `=` or `-`.
public struct ServeReport {
    public let config: ServeBenchmarkConfig
    public let run: ServeBenchmark.Run
    public let metrics: BenchmarkMetrics
    /// Whether token counts are known (a tokenizer is loaded); vLLM hides token lines without one.
    public let hasTokenizer: Bool

    public init(config: ServeBenchmarkConfig, run: ServeBenchmark.Run, metrics: BenchmarkMetrics, hasTokenizer: Bool = true) {
        self.config = config
        self.run = run
        self.metrics = metrics
        self.hasTokenizer = hasTokenizer
    }

    static func title(_ text: String, fill: Character) -> String {
        let pad = max(0, 50 - text.count)
        return String(repeating: fill, count: pad / 2) + text + String(repeating: fill, count: pad - pad / 2)
    }

    static func row(_ label: String, _ value: String) -> String {
        label.padding(toLength: max(40, label.count), withPad: " ", startingAt: 0) + " "
            + value.padding(toLength: max(10, value.count), withPad: " ", startingAt: 0)
    }

    static func row(_ label: String, _ value: Int) -> String { row(label, String(value)) }
    static func row(_ label: String, _ value: Double) -> String { row(label, String(format: "%.2f", value)) }

    /// `99` for 99.0, `99.9` for 99.9 (vLLM's key and label spelling).
    static func percentileWord(_ p: Double) -> String {
        p == p.rounded() && abs(p) < 1e15 ? String(Int(p)) : "\(p)"
    }

    static let metricTitles: [(key: String, name: String, header: String)] = [
        ("ttft", "TTFT", "Time to First Token"),
        ("tpot", "TPOT", "Time per Output Token (excl. 1st token)"),
        ("itl", "ITL", "Inter-token Latency"),
        ("e2el", "E2EL", "End-to-end Latency"),
        ("client_queue_time", "Client Queue Time", "Client-side Queueing"),
        ("e2el_including_client_queue", "E2EL incl. Client Queue", "Queue-inclusive End-to-end Latency"),
    ]

    /// The failed-request listing vLLM prints before the block (at most 10).
    public func failureLines() -> [String] {
        let failed = run.outputs.filter { !$0.success }
        guard !failed.isEmpty else { return [] }
        var lines = ["Failed requests during benchmark run detected (capping to 10):"]
        for (i, output) in failed.prefix(10).enumerated() { lines.append("Error \(i): \(output.error)") }
        return lines
    }

    /// The printed result block, line by line.
    public func lines() -> [String] {
        var lines = [Self.title(" Serving Benchmark Result ", fill: "=")]
        lines.append(Self.row("Successful requests:", metrics.completed))
        lines.append(Self.row("Failed requests:", metrics.failed))
        if let maxConcurrency = config.maxConcurrency {
            lines.append(Self.row("Maximum request concurrency:", maxConcurrency))
        }
        if config.requestRate != .infinity {
            lines.append(Self.row("Request rate configured (RPS):", config.requestRate))
        }
        lines.append(Self.row("Benchmark duration (s):", run.duration))
        lines.append(Self.row("Total input tokens:", metrics.totalInput))
        if hasTokenizer { lines.append(Self.row("Total generated tokens:", metrics.totalOutput)) }
        lines.append(Self.row("Request throughput (req/s):", metrics.requestThroughput))
        if !config.goodput.isEmpty { lines.append(Self.row("Request goodput (req/s):", metrics.requestGoodput)) }
        if hasTokenizer {
            lines.append(Self.row("Output token throughput (tok/s):", metrics.outputThroughput))
            lines.append(Self.row("Peak output token throughput (tok/s):", metrics.maxOutputTokensPerS))
        }
        lines.append(Self.row("Peak concurrent requests:", Double(metrics.maxConcurrentRequests)))
        if hasTokenizer { lines.append(Self.row("Total token throughput (tok/s):", metrics.totalTokenThroughput)) }
        for (key, name, header) in selectedMetrics() {
            guard let summary = metrics.summary(key) else { continue }
            lines.append(Self.title(header, fill: "-"))
            lines.append(Self.row("Mean \(name) (ms):", summary.meanMs))
            lines.append(Self.row("Median \(name) (ms):", summary.medianMs))
            for (p, value) in summary.percentilesMs {
                lines.append(Self.row("P\(Self.percentileWord(p)) \(name) (ms):", value))
            }
        }
        lines.append(String(repeating: "=", count: 50))
        return lines
    }

    /// The metrics with a section, in vLLM's order: the selected ones; TTFT/TPOT/ITL only with a tokenizer;
    /// the client-queue ones only under `--max-concurrency` (and queue-inclusive E2EL only at a finite rate).
    func selectedMetrics() -> [(key: String, name: String, header: String)] {
        Self.metricTitles.filter { entry in
            guard config.selectedPercentileMetrics.contains(entry.key) else { return false }
            switch entry.key {
            case "ttft", "tpot", "itl": return hasTokenizer
            case "client_queue_time": return config.maxConcurrency != nil
            case "e2el_including_client_queue": return config.maxConcurrency != nil && config.requestRate != .infinity
            default: return true
            }
        }
    }

    /// The benchmark part of the saved result, keys in vLLM's order.
    public func result() -> ServeJSON {
        let outputs = run.outputs
        var json = ServeJSON.object([
            ("duration", .double(run.duration)),
            ("completed", .int(metrics.completed)),
            ("failed", .int(metrics.failed)),
            ("total_input_tokens", .int(metrics.totalInput)),
            ("total_output_tokens", .int(metrics.totalOutput)),
            ("request_throughput", .double(metrics.requestThroughput)),
            ("request_goodput", config.goodput.isEmpty ? .null : .double(metrics.requestGoodput)),
            ("output_throughput", .double(metrics.outputThroughput)),
            ("total_token_throughput", .double(metrics.totalTokenThroughput)),
            ("input_lens", .array(outputs.map { .int($0.promptLen) })),
            ("output_lens", .array(metrics.actualOutputLens.map(ServeJSON.int))),
            ("ttfts", .doubles(outputs.map(\.ttft))),
            ("itls", .array(outputs.map { .doubles($0.itl) })),
            ("latencies", .doubles(outputs.map(\.latency))),
            ("start_times", .doubles(outputs.map(\.startTime))),
            ("queue_times", .doubles(outputs.map(\.clientQueueTime))),
            ("generated_texts", .array(outputs.map { .string($0.generatedText) })),
            ("errors", .array(outputs.map { .string($0.error) })),
            ("max_output_tokens_per_s", .double(metrics.maxOutputTokensPerS)),
            ("max_concurrent_requests", .int(metrics.maxConcurrentRequests)),
        ])
        for (key, _, _) in selectedMetrics() {
            guard let summary = metrics.summary(key) else { continue }
            json.set("mean_\(key)_ms", .double(summary.meanMs))
            json.set("median_\(key)_ms", .double(summary.medianMs))
            json.set("std_\(key)_ms", .double(summary.stdMs))
            for (p, value) in summary.percentilesMs {
                json.set("p\(Self.percentileWord(p))_\(key)_ms", .double(value))
            }
        }
        return json
    }
}
