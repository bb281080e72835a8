import Foundation
import XCTest

@testable import PagodaBench

/// Runs the whole benchmark (HTTP, streaming, timing, metrics, JSON) against Tests/e2e/fake_openai_server.py,
/// counting tokens with the toy tokenizer.
final class ServeMainTests: XCTestCase {
    var server: Process?
    var port = 0
    var logPath = ""

    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    func startFake(_ args: [String]) throws {
        logPath = NSTemporaryDirectory() + "fake-\(UUID().uuidString).jsonl"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments =
            ["python3", Self.repoRoot.appendingPathComponent("Tests/e2e/fake_openai_server.py").path, "--port", "0",
             "--log", logPath] + args
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        server = process
        var line = Data()
        while !line.contains(0x0A) {
            let byte = pipe.fileHandleForReading.readData(ofLength: 1)
            if byte.isEmpty { break }
            line.append(byte)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("PORT "), let p = Int(text.dropFirst(5).trimmingCharacters(in: .whitespacesAndNewlines))
        else { throw ServeBenchError("fake server did not start: \(text)") }
        port = p
    }

    override func tearDown() {
        if let server, server.isRunning {
            kill(server.processIdentifier, SIGKILL)
            server.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: logPath)
    }

    func options() -> ServeOptions {
        var o = ServeOptions()
        o.port = port
        o.model = Self.repoRoot.appendingPathComponent("models/tiny-qwen3").path
        o.servedModelName = "fake-model"
        o.disableTqdm = true
        o.randomInputLen = 12
        o.randomOutputLen = 5
        o.numPrompts = 6
        return o
    }

    func run(_ o: ServeOptions) async throws -> (ServeJSON, [String]) {
        var lines: [String] = []
        var main = ServeMain(options: o, loadTokenizer: { _ in ToyTokenizer() })
        let box = LineBox()
        main.log = { box.append($0) }
        let json = try await main.run()
        lines = box.lines
        return (json, lines)
    }

    func testRunCountsTokensAndFailures() async throws {
        try startFake(["--fail-every", "3", "--token-delay-ms", "1"])
        var o = options()
        o.maxConcurrency = 2
        let (json, lines) = try await run(o)
        XCTAssertEqual(json["completed"], .int(4))
        XCTAssertEqual(json["failed"], .int(2))
        XCTAssertEqual(json["total_output_tokens"], .int(20))
        guard case .array(let lens)? = json["output_lens"] else { return XCTFail("no output_lens") }
        XCTAssertEqual(lens.filter { $0 == .int(0) }.count, 2)
        XCTAssertEqual(lens.filter { $0 == .int(5) }.count, 4)
        guard case .array(let errors)? = json["errors"] else { return XCTFail("no errors list") }
        XCTAssertEqual(errors.filter { $0 != .string("") }.count, 2)
        XCTAssertEqual(json["input_lens"], .array(Array(repeating: .int(12), count: 6)))
        XCTAssertTrue(lines.contains("Successful requests:                     4         "), "\(lines)")
        XCTAssertTrue(lines.contains("Failed requests:                         2         "))
        let sent = try String(contentsOfFile: logPath, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(sent.count, 6)
    }

    func testSweepRunsEachLevel() async throws {
        try startFake(["--token-delay-ms", "1"])
        var o = options()
        o.concurrencySweep = [1, 3]
        o.promptsPerConcurrency = 3
        let (json, lines) = try await run(o)
        guard case .array(let results)? = json["results"] else { return XCTFail("no results") }
        XCTAssertEqual(results.map { $0["max_concurrency"] }, [.int(1), .int(3)])
        XCTAssertEqual(results.map { $0["completed"] }, [.int(3), .int(3)])
        XCTAssertTrue(lines.contains { $0.contains("Concurrency Sweep Result") })
    }

    func testServerDownIsOneError() async throws {
        var o = options()
        o.port = 9
        do {
            _ = try await run(o)
            XCTFail("expected an error")
        } catch let error as ServeBenchError {
            XCTAssertEqual(error.description, "cannot reach the server at http://127.0.0.1:9: connection refused")
        }
    }
}

final class LineBox: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [String] = []
    func append(_ line: String) {
        lock.lock()
        storage.append(line)
        lock.unlock()
    }
    var lines: [String] {
        lock.lock()
        defer { lock.unlock() }
        return storage
    }
}
