import Foundation
import PagodaDistributed
import PagodaEngineTestSupport
import XCTest

@testable import PagodaEngine

/// The deployment secret of the engine RPC connections in these tests.
private let testSecret = PeerSecret.random()

/// The engine RPC over real sockets: frames, handshake, request/output flow, aborts, utility
/// calls, statistics, and what each side sees when the other goes away.
final class EngineRPCTests: XCTestCase {
    func handshake(rank: Int = 0) -> EngineHandshake {
        EngineHandshake(
            model: "models/test", numBlocks: 128, blockSize: 16, maxModelLen: 256, vocabSize: 1000,
            eosTokenIds: [2], dataParallelRank: rank, dataParallelSize: 2, pid: Int(getpid()))
    }

    func request(_ id: String, prompt: [Int] = [10], maxTokens: Int = 3, logprobs: Int? = nil) -> EngineRequest {
        var p = SamplingParams.greedy
        p.maxTokens = maxTokens
        p.logprobs = logprobs
        return EngineRequest(requestId: id, promptTokenIds: prompt, sampling: p, eosTokenIds: [2], arrivalTime: 1.5)
    }

    func testFrameRoundTripKeepsEveryField() throws {
        let out = EngineOutput(
            requestId: "r-1", newTokenIds: [5, 6],
            newLogprobs: [TokenLogprob(tokenId: 5, logprob: -0.25, top: [TopLogprob(tokenId: 7, logprob: -1)])],
            finishReason: .stop, stopReason: 6, numCachedTokens: 16, error: nil)
        let frame = try EngineRPCFrame.encode(.outputs([out]))
        let length = Int(frame[0]) << 24 | Int(frame[1]) << 16 | Int(frame[2]) << 8 | Int(frame[3])
        XCTAssertEqual(length, frame.count - 4, "length prefix counts kind byte + payload")
        guard case .outputs(let back) = try EngineRPCFrame.decode(body: frame[4...]) else { return XCTFail("wrong kind") }
        XCTAssertEqual(back.count, 1)
        XCTAssertEqual(back[0].requestId, "r-1"); XCTAssertEqual(back[0].newTokenIds, [5, 6])
        XCTAssertEqual(back[0].newLogprobs, out.newLogprobs); XCTAssertEqual(back[0].finishReason, .stop)
        XCTAssertEqual(back[0].stopReason, 6); XCTAssertEqual(back[0].numCachedTokens, 16)

        let r = request("x", prompt: [1, 2, 3], maxTokens: 9)
        let rf = try EngineRPCFrame.encode(.addRequest(r))
        guard case .addRequest(let rb) = try EngineRPCFrame.decode(body: rf[4...]) else { return XCTFail("wrong kind") }
        XCTAssertEqual(rb.promptTokenIds, [1, 2, 3]); XCTAssertEqual(rb.sampling, r.sampling); XCTAssertEqual(rb.arrivalTime, 1.5)
    }

    /// The cost of the JSON frame codec on the hot path: one step's outputs for 64 running requests.
    func testOutputsFrameCodecCostPerStep() throws {
        let outputs = (0..<64).map { EngineOutput(requestId: "cmpl-\(UUID().uuidString)-0", newTokenIds: [151_000 + $0]) }
        let rounds = 200
        let start = Date()
        for _ in 0..<rounds {
            let frame = try EngineRPCFrame.encode(.outputs(outputs))
            guard case .outputs(let back) = try EngineRPCFrame.decode(body: frame[4...]), back.count == 64 else { return XCTFail() }
        }
        let perStep = Date().timeIntervalSince(start) / Double(rounds)
        print("engine RPC: encode+decode of 64 outputs: \(String(format: "%.1f", perStep * 1e6)) µs per step")
        XCTAssertLessThan(perStep, 0.02, "the codec must stay far below a model step")
    }

    func testCorruptFramesAreRejected() {
        XCTAssertThrowsError(try EngineRPCFrame.decode(body: [UInt8]([99, 1, 2]))) { error in
            XCTAssertEqual(error as? EngineRPCError, .badFrame("unknown message kind 99"))
        }
        XCTAssertThrowsError(try EngineRPCFrame.decode(body: [UInt8]([5]) + Array("{not json".utf8)))
        XCTAssertThrowsError(try EngineRPCFrame.decode(body: [UInt8]()))
    }

    func testAddressParsing() throws {
        XCTAssertEqual(try EngineRPCAddress(parsing: "unix:/tmp/x.sock"), .unix(path: "/tmp/x.sock"))
        XCTAssertEqual(try EngineRPCAddress(parsing: "tcp://127.0.0.1:5570"), .tcp(host: "127.0.0.1", port: 5570))
        XCTAssertThrowsError(try EngineRPCAddress(parsing: "127.0.0.1:5570"))
        XCTAssertThrowsError(try EngineRPCAddress(parsing: "tcp://host:notaport"))
    }

    /// Runs an engine-side server on a background thread over `connection`.
    func serveInBackground(_ connection: EngineRPCConnection, backend: TestEngineBackend, handshake h: EngineHandshake) -> XCTestExpectation
    {
        let done = expectation(description: "engine side returned")
        let server = EngineCoreRPCServer(connection: connection, handshake: h, backend: backend, statsInterval: 0.005)
        Thread {
            _ = server.run()
            done.fulfill()
        }.start()
        return done
    }

    /// Connects to `address` with `secret` (the handshake needs the listener to accept, so not on the test's
    /// thread) and serves `backend` there until the front-end lets go.
    func connectAndServeInBackground(
        _ address: EngineRPCAddress, secret: PeerSecret = testSecret, backend: TestEngineBackend, handshake h: EngineHandshake
    ) -> XCTestExpectation {
        let done = expectation(description: "engine side returned")
        Thread {
            if let c = try? EngineRPCConnection.connect(to: address, secret: secret, timeout: 5) {
                _ = EngineCoreRPCServer(connection: c, handshake: h, backend: backend, statsInterval: 0.005).run()
            }
            done.fulfill()
        }.start()
        return done
    }

    /// Collects outputs by request id and signals when `expected` requests have finished.
    final class Sink: @unchecked Sendable {
        let lock = NSLock()
        var outputs: [String: [EngineOutput]] = [:]
        var finished = 0
        var closedReason: String?
        func add(_ o: [EngineOutput]) {
            lock.lock(); defer { lock.unlock() }
            for x in o { outputs[x.requestId, default: []].append(x); if x.finishReason != nil { finished += 1 } }
        }
        func tokens(_ id: String) -> [Int] { lock.lock(); defer { lock.unlock() }; return outputs[id, default: []].flatMap(\.newTokenIds) }
        var finishedCount: Int { lock.lock(); defer { lock.unlock() }; return finished }
    }

    func waitUntil(_ timeout: Double = 5, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline { if condition() { return true }; usleep(2_000) }
        return condition()
    }

    func testRequestsFlowOverAUnixSocket() throws {
        let path = NSTemporaryDirectory() + "pagoda-rpc-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        let listener = try EngineRPCListener(address: .unix(path: path), secret: testSecret)
        let backend = TestEngineBackend()
        let done = connectAndServeInBackground(.unix(path: path), backend: backend, handshake: handshake(rank: 1))
        let client = try EngineCoreRPCClient(connection: try listener.accept(timeout: 2))
        XCTAssertEqual(client.handshakeInfo.dataParallelRank, 1)
        XCTAssertEqual(client.handshakeInfo.numBlocks, 128)

        let sink = Sink()
        let closed = expectation(description: "closed")
        client.start(
            onOutputs: sink.add,
            onClosed: { reason in
                sink.closedReason = reason; closed.fulfill()
            })
        try client.addRequest(request("a", prompt: [10], maxTokens: 3))
        try client.addRequest(request("b", prompt: [100], maxTokens: 5, logprobs: 2))
        XCTAssertTrue(waitUntil { sink.finishedCount == 2 })
        XCTAssertEqual(sink.tokens("a"), [11, 12, 13])
        XCTAssertEqual(sink.tokens("b"), [101, 102, 103, 104, 105])
        XCTAssertEqual(sink.outputs["a"]?.last?.finishReason, .length)
        XCTAssertEqual(sink.outputs["b"]?.first?.newLogprobs?.first?.top.count, 2)

        // An invalid request is answered with an error output, not a dropped connection.
        try client.addRequest(request("bad", prompt: []))
        XCTAssertTrue(waitUntil { sink.finishedCount == 3 })
        XCTAssertEqual(sink.outputs["bad"]?.last?.finishReason, .error)
        XCTAssertEqual(sink.outputs["bad"]?.last?.error, "prompt is empty")

        // Utility calls pair results with calls.
        let got = expectation(description: "utility")
        client.utility(method: "echo", arguments: ["x", "y"]) { r in
            XCTAssertEqual(try? r.get(), "x y"); got.fulfill()
        }
        let unknown = expectation(description: "unknown utility")
        client.utility(method: "nope") { r in
            if case .failure(let e) = r {
                XCTAssertTrue("\(e)".contains("unknown engine utility method 'nope'"))
            } else {
                XCTFail("expected failure")
            }
            unknown.fulfill()
        }
        wait(for: [got, unknown], timeout: 5)

        client.shutdown()
        wait(for: [done, closed], timeout: 5)
        XCTAssertTrue(backend.shutDown, "the backend is shut down when the front-end says shutdown")
    }

    func testAbortStopsOutputsAndStatsReachTheClient() throws {
        let (front, engine) = try EngineRPCConnection.pair()
        let backend = TestEngineBackend(stepInterval: 0.005)
        let done = serveInBackground(engine, backend: backend, handshake: handshake())
        let client = try EngineCoreRPCClient(connection: front)
        let sink = Sink()
        client.start(onOutputs: sink.add, onClosed: { _ in })
        try client.addRequest(request("long", maxTokens: 100_000))
        XCTAssertTrue(waitUntil { client.stats.numRunning == 1 }, "stats published while running")
        XCTAssertTrue(waitUntil { sink.tokens("long").count >= 3 })
        client.abortRequests(["long"])
        XCTAssertTrue(waitUntil { backend.numRunning == 0 })
        XCTAssertEqual(backend.aborted, ["long"])
        XCTAssertTrue(waitUntil { client.stats.numRunning == 0 && client.stats.kvCacheUsage == 0 }, "stats return to idle")
        let count = sink.tokens("long").count
        usleep(50_000)
        XCTAssertEqual(sink.tokens("long").count, count, "no outputs after the abort")
        client.shutdown()
        wait(for: [done], timeout: 5)
    }

    func testEngineGoingAwayClosesTheClientWithAReason() throws {
        let (front, engine) = try EngineRPCConnection.pair()
        let backend = TestEngineBackend()
        let server = EngineCoreRPCServer(connection: engine, handshake: handshake(), backend: backend)
        Thread { _ = server.run() }.start()
        let client = try EngineCoreRPCClient(connection: front)
        let closed = expectation(description: "closed")
        client.start(
            onOutputs: { _ in },
            onClosed: { reason in
                XCTAssertTrue(reason.contains("closed"), reason)
                closed.fulfill()
            })
        XCTAssertNil(client.closed)
        engine.close()  // what the kernel does when the engine process dies
        wait(for: [closed], timeout: 5)
        XCTAssertNotNil(client.closed)
        XCTAssertThrowsError(try client.addRequest(request("late")))
    }

    func testFrontEndGoingAwayEndsTheEngineSide() throws {
        let (front, engine) = try EngineRPCConnection.pair()
        let backend = TestEngineBackend()
        let server = EngineCoreRPCServer(connection: engine, handshake: handshake(), backend: backend)
        let exited = expectation(description: "engine side returned")
        Thread {
            let exit = server.run()
            if case .frontEndGone = exit {} else { XCTFail("expected frontEndGone, got \(exit)") }
            exited.fulfill()
        }.start()
        let client = try EngineCoreRPCClient(connection: front)
        _ = client
        front.close()
        wait(for: [exited], timeout: 5)
        XCTAssertTrue(backend.shutDown)
    }

    func testProtocolVersionMismatchIsRefused() throws {
        let (front, engine) = try EngineRPCConnection.pair()
        var h = handshake()
        h.protocolVersion = EngineRPCProtocol.version + 1
        let backend = TestEngineBackend()
        let server = EngineCoreRPCServer(connection: engine, handshake: h, backend: backend)
        let exited = expectation(description: "engine side returned")
        Thread {
            let exit = server.run()
            guard case .frontEndGone(let why) = exit else { XCTFail("\(exit)"); return }
            XCTAssertTrue(why.contains("refused"), why)
            exited.fulfill()
        }.start()
        XCTAssertThrowsError(try EngineCoreRPCClient(connection: front)) { error in
            XCTAssertTrue("\(error)".contains("protocol v\(EngineRPCProtocol.version + 1)"), "\(error)")
        }
        wait(for: [exited], timeout: 5)
    }

    func testTCPListenerPicksAFreePortAndAccepts() throws {
        let listener = try EngineRPCListener(address: .tcp(host: "127.0.0.1", port: 0), secret: testSecret)
        guard case .tcp(_, let port) = listener.address else { return XCTFail() }
        XCTAssertGreaterThan(port, 0)
        let backend = TestEngineBackend()
        let done = connectAndServeInBackground(listener.address, backend: backend, handshake: handshake())
        let client = try EngineCoreRPCClient(connection: try listener.accept(timeout: 2))
        let sink = Sink()
        client.start(onOutputs: sink.add, onClosed: { _ in })
        try client.addRequest(request("t", prompt: [7], maxTokens: 2))
        XCTAssertTrue(waitUntil { sink.finishedCount == 1 })
        XCTAssertEqual(sink.tokens("t"), [8, 9])
        client.shutdown()
        wait(for: [done], timeout: 5)
    }

    /// A raw client speaking the RPC without the handshake and an engine core with another secret are refused
    /// (the listener logs why and keeps listening); the real engine core is accepted after them.
    func testListenerRefusesPeersWithoutTheSecretAndKeepsListening() throws {
        let path = NSTemporaryDirectory() + "pagoda-rpc-auth-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        let listener = try EngineRPCListener(address: .unix(path: path), secret: testSecret)

        // 1. A raw client that sends its hello frame at once.
        let raw = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(raw) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(raw, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(rc, 0)
        let frame = try EngineRPCFrame.encode(.hello(handshake()))
        XCTAssertEqual(frame.withUnsafeBytes { write(raw, $0.baseAddress!, $0.count) }, frame.count)

        // 2. An engine core with another deployment's secret.
        let strangerDone = expectation(description: "stranger refused")
        nonisolated(unsafe) var strangerError = ""
        Thread {
            do { _ = try EngineRPCConnection.connect(to: .unix(path: path), secret: .random(), timeout: 5) } catch {
                strangerError = "\(error)"
            }
            strangerDone.fulfill()
        }.start()
        usleep(200_000)

        // 3. The real one.
        let backend = TestEngineBackend()
        let done = connectAndServeInBackground(.unix(path: path), backend: backend, handshake: handshake(rank: 3))
        let client = try EngineCoreRPCClient(connection: try listener.accept(timeout: 15))
        XCTAssertEqual(client.handshakeInfo.dataParallelRank, 3)
        wait(for: [strangerDone], timeout: 10)
        XCTAssertTrue(strangerError.contains("engine refused: authentication with unix:\(path) failed: wrong secret"), strangerError)
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(raw, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var byte: UInt8 = 0
        let n = read(raw, &byte, 1)
        // Closed (end of stream, or a reset: the frame it sent was left unread), not a timeout.
        XCTAssertTrue(
            n == 0 || (n < 0 && errno == ECONNRESET),
            "the raw client's connection is closed without an answer: read gave \(n), errno \(errno)")

        let sink = Sink()
        client.start(onOutputs: sink.add, onClosed: { _ in })
        try client.addRequest(request("ok", prompt: [1], maxTokens: 2))
        XCTAssertTrue(waitUntil { sink.finishedCount == 1 })
        client.shutdown()
        wait(for: [done], timeout: 5)
    }

    func testAcceptGivesUpWhenTheCheckThrows() throws {
        let listener = try EngineRPCListener(address: .tcp(host: "127.0.0.1", port: 0), secret: testSecret)
        let start = Date()
        XCTAssertThrowsError(try listener.accept(timeout: 30) { throw EngineRPCError.handshake("child exited") })
        XCTAssertLessThan(Date().timeIntervalSince(start), 1)
    }
}
