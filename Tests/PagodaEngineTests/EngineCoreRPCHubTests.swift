import Foundation
import PagodaDistributed
import PagodaEngineTestSupport
import XCTest

@testable import PagodaEngine

/// The deployment secret of the engine RPC connections in these tests.
private let testSecret = PeerSecret.random()

/// One engine core shared by several front-ends (`--api-server-count K`) over real Unix sockets: the same
/// request id from two front-ends does not collide, outputs go back only to the front-end that sent the
/// request, statistics go to all (each with its own received count), and a front-end that leaves has its
/// requests aborted while the engine keeps serving the others.
final class EngineCoreRPCHubTests: XCTestCase {
    let handshake = EngineHandshake(
        model: "models/test", numBlocks: 128, blockSize: 16, maxModelLen: 256, vocabSize: 1000,
        eosTokenIds: [2], dataParallelRank: 1, dataParallelSize: 2, pid: Int(getpid()))

    func request(_ id: String, prompt: Int, maxTokens: Int) -> EngineRequest {
        var p = SamplingParams.greedy
        p.maxTokens = maxTokens
        return EngineRequest(requestId: id, promptTokenIds: [prompt], sampling: p, eosTokenIds: [2], arrivalTime: 0)
    }

    /// A front-end's view: outputs by request id and the last statistics, filled by the client's reader thread.
    final class FrontEnd: @unchecked Sendable {
        let client: EngineCoreRPCClient
        let lock = NSLock()
        var tokens: [String: [Int]] = [:]
        var finished: Set<String> = []
        var lastStats = SchedulerStats()
        init(_ client: EngineCoreRPCClient) {
            self.client = client
            client.start(
                onOutputs: { [self] outs in
                    lock.lock()
                    for o in outs {
                        tokens[o.requestId, default: []] += o.newTokenIds
                        if o.finishReason != nil { finished.insert(o.requestId) }
                    }
                    lock.unlock()
                },
                onStats: { [self] s in
                    lock.lock(); lastStats = s; lock.unlock()
                }, onClosed: { _ in })
        }
        func snapshot() -> ([String: [Int]], Set<String>, SchedulerStats) {
            lock.lock(); defer { lock.unlock() }; return (tokens, finished, lastStats)
        }
    }

    func waitUntil(_ what: String, timeout: Double = 10, _ condition: () -> Bool) {
        let deadline = Date().addingTimeInterval(timeout)
        while !condition() && Date() < deadline { usleep(5_000) }
        XCTAssertTrue(condition(), "timed out waiting: \(what)")
    }

    func testTwoFrontEndsShareOneEngineCore() throws {
        let path = NSTemporaryDirectory() + "pagoda-hub-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        defer { unlink(path) }
        let listener = try EngineRPCListener(address: .unix(path: path), secret: testSecret)
        let backend = TestEngineBackend(stepInterval: 0.002)
        let hub = EngineCoreRPCHub(listener: listener, handshake: handshake, backend: backend, statsInterval: 0.005)
        let hubThread = Thread { hub.run() }
        hubThread.start()
        defer { hub.stop() }

        let a = FrontEnd(
            try EngineCoreRPCClient(connection: try EngineRPCConnection.connect(to: .unix(path: path), secret: testSecret, timeout: 5)))
        let b = FrontEnd(
            try EngineCoreRPCClient(connection: try EngineRPCConnection.connect(to: .unix(path: path), secret: testSecret, timeout: 5)))
        XCTAssertEqual(a.client.handshakeInfo.dataParallelRank, 1)
        waitUntil("both sessions joined") { hub.numSessions == 2 }

        // The same id from both front-ends: each gets only its own tokens, under its own id.
        try a.client.addRequest(request("r", prompt: 100, maxTokens: 3))
        try b.client.addRequest(request("r", prompt: 500, maxTokens: 4))
        try b.client.addRequest(request("only-b", prompt: 900, maxTokens: 2))
        waitUntil("all finished") { a.snapshot().1 == ["r"] && b.snapshot().1 == ["r", "only-b"] }
        XCTAssertEqual(a.snapshot().0, ["r": [101, 102, 103]])
        XCTAssertEqual(b.snapshot().0, ["r": [501, 502, 503, 504], "only-b": [901, 902]])
        XCTAssertEqual(Set(backend.addedRequests.map(\.requestId)).count, 3, "engine-side ids are distinct")

        // Statistics reach both, each counting only its own add-requests.
        waitUntil("received counts") { a.snapshot().2.numRequestsReceived == 1 && b.snapshot().2.numRequestsReceived == 2 }

        // A front-end that leaves has its requests aborted; the other keeps being served.
        try a.client.addRequest(request("long-a", prompt: 10, maxTokens: 100_000))
        try b.client.addRequest(request("long-b", prompt: 20, maxTokens: 100_000))
        waitUntil("both running") { backend.numRunning == 2 }
        a.client.shutdown()
        waitUntil("a's request aborted") { backend.numRunning == 1 && hub.numSessions == 1 }
        XCTAssertEqual(backend.aborted.count, 1)
        XCTAssertTrue(backend.aborted[0].hasSuffix(":long-a"), backend.aborted[0])
        let before = b.snapshot().0["long-b"]?.count ?? 0
        waitUntil("b still served") { (b.snapshot().0["long-b"]?.count ?? 0) > before + 5 }

        // A new front-end can join later (an API server started again).
        let c = FrontEnd(
            try EngineCoreRPCClient(connection: try EngineRPCConnection.connect(to: .unix(path: path), secret: testSecret, timeout: 5)))
        try c.client.addRequest(request("r", prompt: 7, maxTokens: 2))
        waitUntil("c served") { c.snapshot().1 == ["r"] }
        XCTAssertEqual(c.snapshot().0, ["r": [8, 9]])
        b.client.abortRequests(["long-b"])
        waitUntil("b's abort reached the engine") { backend.numRunning == 0 }

        hub.stop()
        waitUntil("hub stopped") { backend.shutDown }
    }

    func testAHandshakeThatNeverComesTimesOut() throws {
        let path = NSTemporaryDirectory() + "pagoda-hub-silent-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        defer { unlink(path) }
        let listener = try EngineRPCListener(address: .unix(path: path), secret: testSecret)
        // A listener that accepts but never says hello: the receive timeout ends the wait.
        Thread {
            _ = try? listener.accept(timeout: 5); Thread.sleep(forTimeInterval: 5)
        }.start()
        let connection = try EngineRPCConnection.connect(to: .unix(path: path), secret: testSecret, timeout: 5)
        connection.setReceiveTimeout(0.3)
        let start = Date()
        XCTAssertThrowsError(try EngineCoreRPCClient(connection: connection))
        XCTAssertLessThan(Date().timeIntervalSince(start), 4)
    }

    /// Engine RPC v4 in the hub: the hello carries the model identity; with a liveness timeout each session
    /// sends heartbeats, and a front-end that goes silent is given up after the timeout while a heartbeating
    /// one stays.
    func testHubSessionsSendHeartbeatsAndDropSilentFrontEnds() throws {
        let path = NSTemporaryDirectory() + "pagoda-hub-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        defer { unlink(path) }
        var hello = handshake
        hello.modelIdentity = "sha256:test-identity"
        let listener = try EngineRPCListener(address: .unix(path: path), secret: testSecret)
        let backend = TestEngineBackend(stepInterval: 0.002)
        let liveness = EngineRPCLiveness(timeout: 0.5)
        let hub = EngineCoreRPCHub(listener: listener, handshake: hello, backend: backend, statsInterval: 0.005, liveness: liveness)
        let hubThread = Thread { hub.run() }
        hubThread.start()
        defer { hub.stop() }

        // A silent front-end: handshake, then nothing. It sees heartbeats, then the hub closes it.
        let silent = try EngineRPCConnection.connect(to: .unix(path: path), secret: testSecret, timeout: 5)
        defer { silent.close() }
        guard case .hello(let h)? = try silent.receive() else { return XCTFail("expected the hello") }
        XCTAssertEqual(h.modelIdentity, "sha256:test-identity")
        try silent.send(.helloAck)
        silent.setReceiveTimeout(5)
        var heartbeats = 0
        var closed = false
        let started = Date()
        while Date().timeIntervalSince(started) < 5 {
            guard let m = try silent.receive() else { closed = true; break }
            if case .heartbeat = m { heartbeats += 1 }
        }
        XCTAssertTrue(closed, "the hub gives up a front-end that sends nothing for the liveness timeout")
        XCTAssertGreaterThan(heartbeats, 0, "the hub sends heartbeats")

        // A front-end that heartbeats stays connected well past the timeout.
        let client = try EngineCoreRPCClient(
            connection: try EngineRPCConnection.connect(to: .unix(path: path), secret: testSecret, timeout: 5))
        let live = FrontEnd(client)
        client.startHeartbeats(liveness)
        waitUntil("the heartbeating session joined") { hub.numSessions == 1 }
        Thread.sleep(forTimeInterval: 1.5)
        XCTAssertEqual(hub.numSessions, 1)
        try live.client.addRequest(request("after-idle", prompt: 10, maxTokens: 2))
        waitUntil("served after idling") { live.snapshot().1 == ["after-idle"] }
        live.client.shutdown()
        waitUntil("the session left") { hub.numSessions == 0 }
    }
}
