import XCTest

@testable import PagodaBench

final class ServeReportTests: XCTestCase {
    func output(start: Double, ttft: Double, itl: [Double], tokens: Int?, text: String = "", promptLen: Int = 10) -> RequestFuncOutput {
        var o = RequestFuncOutput()
        o.success = true
        o.startTime = start
        o.ttft = ttft
        o.itl = itl
        o.latency = ttft + itl.reduce(0, +)
        o.outputTokens = tokens
        o.generatedText = text
        o.promptLen = promptLen
        return o
    }

    func testMetricsCountFailuresAndTokens() {
        var failed = RequestFuncOutput()
        failed.error = "HTTP 500 Internal Server Error: boom"
        failed.promptLen = 10
        let outputs = [
            output(start: 0, ttft: 0.1, itl: [0.01, 0.01, 0.02], tokens: 4),
            failed,
            output(start: 0.05, ttft: 0.2, itl: [0.05], tokens: nil, text: "abcc"),  // counted by tokenizer: [abc][c]
        ]
        let m = BenchmarkMetrics.calculate(
            outputs: outputs, duration: 2, tokenizer: ToyTokenizer(), percentiles: [50, 99],
            goodput: ["ttft": 150])
        XCTAssertEqual(m.completed, 2)
        XCTAssertEqual(m.failed, 1)
        XCTAssertEqual(m.actualOutputLens, [4, 0, 2])
        XCTAssertEqual(m.totalInput, 20)
        XCTAssertEqual(m.totalOutput, 6)
        XCTAssertEqual(m.requestThroughput, 1)
        XCTAssertEqual(m.requestGoodput, 0.5, "only the first meets TTFT <= 150 ms")
        XCTAssertEqual(m.outputThroughput, 3)
        XCTAssertEqual(m.totalTokenThroughput, 13)
        XCTAssertEqual(m.ttft.meanMs, 150, accuracy: 1e-9)
        // TPOT: (0.14 - 0.1) / 3 and (0.25 - 0.2) / 1.
        XCTAssertEqual(m.tpot.meanMs, ((0.04 / 3) + 0.05) / 2 * 1000, accuracy: 1e-9)
        XCTAssertEqual(m.itl.medianMs, 15, accuracy: 1e-9)
        XCTAssertEqual(m.maxConcurrentRequests, 2)
        XCTAssertEqual(m.maxOutputTokensPerS, 6)
    }

    func testPrintedBlockMatchesVLLMLayout() {
        var config = ServeBenchmarkConfig(apiURL: "http://x/v1/completions", baseURL: "http://x", modelId: "m")
        config.maxConcurrency = 4
        var failed = RequestFuncOutput()
        failed.error = "connection refused"
        let outputs = [output(start: 0, ttft: 0.1, itl: [0.01], tokens: 2), failed]
        let run = ServeBenchmark.Run(outputs: outputs, duration: 1.5)
        let metrics = BenchmarkMetrics.calculate(
            outputs: outputs, duration: 1.5, tokenizer: ToyTokenizer(), percentiles: [99], goodput: [:])
        let report = ServeReport(config: config, run: run, metrics: metrics)
        let lines = report.lines()
        XCTAssertEqual(lines[0], "============ Serving Benchmark Result ============")
        XCTAssertEqual(lines[1], "Successful requests:                     1         ")
        XCTAssertEqual(lines[2], "Failed requests:                         1         ")
        XCTAssertEqual(lines[3], "Maximum request concurrency:             4         ")
        XCTAssertEqual(lines[4], "Benchmark duration (s):                  1.50      ")
        XCTAssertTrue(lines.contains("---------------Time to First Token----------------"))
        XCTAssertTrue(lines.contains("Mean TTFT (ms):                          100.00    "))
        XCTAssertTrue(lines.contains("P99 ITL (ms):                            10.00     "))
        XCTAssertFalse(lines.contains { $0.contains("E2EL") }, "E2EL is not in the default selection")
        XCTAssertEqual(lines.last, String(repeating: "=", count: 50))
        XCTAssertEqual(report.failureLines(), [
            "Failed requests during benchmark run detected (capping to 10):", "Error 0: connection refused",
        ])
        let json = report.result()
        for key in [
            "duration", "completed", "failed", "total_input_tokens", "total_output_tokens", "request_throughput",
            "output_throughput", "total_token_throughput", "input_lens", "output_lens", "ttfts", "itls",
            "generated_texts", "errors", "mean_ttft_ms", "median_ttft_ms", "std_ttft_ms", "p99_ttft_ms",
            "mean_tpot_ms", "p99_tpot_ms", "mean_itl_ms", "p99_itl_ms",
        ] {
            XCTAssertNotNil(json[key], key)
        }
        XCTAssertEqual(json["errors"], .array([.string(""), .string("connection refused")]))
        XCTAssertEqual(json["request_goodput"], .null)
    }

    func testJSONPrintsLikePython() {
        let json = ServeJSON.object([
            ("a", .int(1)), ("b", .double(2)), ("c", .string("é\"\n")), ("d", .array([.null, .bool(true)])),
            ("e", .double(.infinity)), ("f", .double(0.25)),
        ])
        XCTAssertEqual(json.serialized(), #"{"a": 1, "b": 2.0, "c": "\u00e9\"\n", "d": [null, true], "e": null, "f": 0.25}"#)
        XCTAssertEqual(ServeReport.percentileWord(99), "99")
        XCTAssertEqual(ServeReport.percentileWord(99.9), "99.9")
    }

    func testOptionsValidation() {
        var o = ServeOptions()
        XCTAssertNoThrow(try o.validate())
        XCTAssertEqual(o.resolvedBaseURL, "http://127.0.0.1:8000")
        o.backend = .openaiChat
        XCTAssertEqual(o.resolvedEndpoint, "/v1/chat/completions")
        o.endpoint = "/v1/completions"
        XCTAssertThrowsError(try o.validate())
        o = ServeOptions()
        o.goodput = ["ttft:abc"]
        XCTAssertThrowsError(try o.validate()) { XCTAssertTrue("\($0)".contains("--goodput")) }
        o.goodput = ["ttft:100", "e2el:2000"]
        XCTAssertEqual(try o.parsedGoodput(), ["ttft": 100, "e2el": 2000])
        o.percentileMetrics = "ttft,bogus"
        XCTAssertThrowsError(try o.validate()) { XCTAssertTrue("\($0)".contains("bogus")) }
        o = ServeOptions()
        o.datasetName = .sharegpt
        XCTAssertThrowsError(try o.validate()) { XCTAssertTrue("\($0)".contains("--dataset-path")) }
        o = ServeOptions()
        o.concurrencySweep = [1, 0]
        XCTAssertThrowsError(try o.validate())
        XCTAssertEqual(DatasetName(flag: "prefix-repetition"), .prefixRepetition)
        XCTAssertEqual(DatasetName(flag: "prefix_repetition"), .prefixRepetition)
    }
}
