import Foundation

/// The one table a `--concurrency-sweep` prints: a row per concurrency level with the headline numbers.
public struct ServeSweepTable {
    public struct Row {
        public var concurrency: Int
        public var prompts: Int
        public var run: ServeBenchmark.Run
        public var metrics: BenchmarkMetrics
    }

    public var rows: [Row]
    /// The first `--metric-percentiles` entry gets the percentile columns.
    public var percentiles: [Double]

    public func lines() -> [String] {
        let p = percentiles.first ?? 99
        let pw = ServeReport.percentileWord(p)
        let headers = [
            "Concurrency", "Prompts", "OK", "Failed", "Duration(s)", "Req/s", "Out tok/s", "Total tok/s",
            "Mean TTFT(ms)", "P\(pw) TTFT(ms)", "Mean TPOT(ms)", "P\(pw) TPOT(ms)", "Mean ITL(ms)", "Mean E2EL(ms)",
        ]
        let f = { (x: Double) in String(format: "%.2f", x) }
        let body: [[String]] = rows.map { row in
            let m = row.metrics
            return [
                String(row.concurrency), String(row.prompts), String(m.completed), String(m.failed), f(row.run.duration),
                f(m.requestThroughput), f(m.outputThroughput), f(m.totalTokenThroughput), f(m.ttft.meanMs),
                f(m.ttft.percentilesMs.first?.1 ?? 0), f(m.tpot.meanMs), f(m.tpot.percentilesMs.first?.1 ?? 0),
                f(m.itl.meanMs), f(m.e2el.meanMs),
            ]
        }
        let widths = headers.indices.map { c in ([headers[c]] + body.map { $0[c] }).map(\.count).max()! }
        func format(_ cells: [String]) -> String {
            cells.indices.map { c in
                String(repeating: " ", count: widths[c] - cells[c].count) + cells[c]
            }.joined(separator: "  ")
        }
        let header = format(headers)
        var lines = [ServeReport.title(" Concurrency Sweep Result ", fill: "=")]
        lines.append(header)
        lines.append(String(repeating: "-", count: header.count))
        lines += body.map(format)
        lines.append(String(repeating: "=", count: header.count))
        return lines
    }
}
