import Foundation
import Logging
import PagodaDistributed
import PagodaEngine
import PagodaEngineTestSupport
import XCTest

@testable import PagodaServer

/// The deployment secret of the engine RPC connections in these tests.
private let testSecret = PeerSecret.random()

/// The head's door for headless nodes over real loopback TCP: ranks join, and a rank joining twice, out of
/// range, belonging to the head, serving another model or speaking another protocol is refused on both sides.
final class RemoteRankAcceptorTests: XCTestCase {
    var acceptor: RemoteRankAcceptor!
    var backends: [TestEngineBackend] = []

    override func setUpWithError() throws {
        // Four ranks; the head runs 0 and 1, ranks 2 and 3 are remote.
        let admission = RankAdmission(size: 4, localRanks: 0..<2, modelIdentity: "fnv1a64:aaaa", model: "/head/model", blockSize: 4)
        acceptor = try RemoteRankAcceptor(
            address: .tcp(host: "127.0.0.1", port: 0), secret: testSecret, admission: admission, liveness: EngineRPCLiveness(timeout: 10),
            logger: Logger(label: "test"), helloTimeout: 5)
        acceptor.start()
    }

    override func tearDown() {
        acceptor.stop()
        for b in backends { b.shutdown() }
    }

    func hello(rank: Int, identity: String = "fnv1a64:aaaa", size: Int = 4, version: Int = EngineRPCProtocol.version) -> EngineHandshake {
        EngineHandshake(
            protocolVersion: version, model: "/node1/model", numBlocks: 32, blockSize: 4, maxModelLen: 64,
            vocabSize: 1000, eosTokenIds: [0], dataParallelRank: rank, dataParallelSize: size, pid: 1000 + rank,
            modelIdentity: identity, address: "127.0.0.1")
    }

    /// Connects an engine core that says `hello` and serves until the head lets go; returns how it ended.
    func join(_ hello: EngineHandshake, secret: PeerSecret = testSecret) -> XCTestExpectation.Box {
        let box = XCTestExpectation.Box(expectation(description: "rank \(hello.dataParallelRank) returned"))
        let backend = TestEngineBackend()
        backends.append(backend)
        let address = acceptor.address
        Thread {
            do {
                let c = try EngineRPCConnection.connect(to: address, secret: secret, timeout: 5)
                box.exit = EngineCoreRPCServer(connection: c, handshake: hello, backend: backend).run()
            } catch {
                box.exit = .frontEndGone("connect: \(error)")
            }
            box.expectation.fulfill()
        }.start()
        return box
    }

    func refusal(_ box: XCTestExpectation.Box) -> String {
        wait(for: [box.expectation], timeout: 10)
        guard case .frontEndGone(let why)? = box.exit else { return "not refused: \(String(describing: box.exit))" }
        return why
    }

    /// A raw TCP client that sends an engine RPC hello without authenticating, and an engine core with another
    /// secret, are refused (the latter is told so); the door stays open and the real ranks join.
    func testPeersWithoutTheSecretAreRefusedAndTheDoorStaysOpen() throws {
        guard case .tcp(_, let port) = acceptor.address else { return XCTFail("TCP expected") }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        XCTAssertEqual(rc, 0)
        let json = Array(#"{"hello":{"dataParallelRank":2}}"#.utf8)
        let frame: [UInt8] = [0, 0, 0, UInt8(json.count + 1), 1] + json
        XCTAssertEqual(frame.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }, frame.count)
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var byte: UInt8 = 0
        let n = read(fd, &byte, 1)
        // Closed (end of stream, or a reset: the frame it sent was left unread), not a timeout.
        XCTAssertTrue(
            n == 0 || (n < 0 && errno == ECONNRESET),
            "the head closes an unauthenticated connection without a word: read gave \(n), errno \(errno)")

        let stranger = refusal(join(hello(rank: 2), secret: .random()))
        XCTAssertTrue(stranger.contains("wrong secret"), stranger)

        let two = join(hello(rank: 2)), three = join(hello(rank: 3))
        let joined = try acceptor.waitForAll(timeout: 10)
        XCTAssertEqual(joined.keys.sorted(), [2, 3])
        for c in joined.values { c.shutdown() }
        wait(for: [two.expectation, three.expectation], timeout: 10)
    }

    func testRanksJoinAndEachBadHelloIsRefusedOnBothSides() throws {
        let two = join(hello(rank: 2))
        // The head waits for rank 3 and names it when it gives up.
        XCTAssertThrowsError(try acceptor.waitForAll(timeout: 3, logInterval: 0.5)) { error in
            XCTAssertEqual("\(error)".components(separatedBy: " did not join")[0], "data-parallel rank 3", "\(error)")
        }
        // Rank 2 is live: joining again is refused.
        XCTAssertTrue(
            refusal(join(hello(rank: 2))).contains("front-end refused the handshake: data-parallel rank 2 has already joined and is live"))
        XCTAssertTrue(refusal(join(hello(rank: 7))).contains("rank 7 is out of range: the deployment has ranks 0..<4"))
        XCTAssertTrue(refusal(join(hello(rank: 1))).contains("rank 1 belongs to the head's local ranks 0..<2"))
        let other = refusal(join(hello(rank: 3, identity: "fnv1a64:bbbb")))
        XCTAssertTrue(
            other.contains("rank 3 serves a different model: /node1/model (fnv1a64:bbbb); the head serves /head/model (fnv1a64:aaaa)"),
            other)
        XCTAssertTrue(refusal(join(hello(rank: 3, size: 8))).contains("--data-parallel-size 8; the head runs 4"))
        let version = refusal(join(hello(rank: 3, version: EngineRPCProtocol.version + 1)))
        XCTAssertTrue(version.contains("protocol v\(EngineRPCProtocol.version + 1)"), version)

        // The right rank 3 completes the deployment.
        let three = join(hello(rank: 3))
        let joined = try acceptor.waitForAll(timeout: 10)
        XCTAssertEqual(joined.keys.sorted(), [2, 3])
        XCTAssertEqual(joined[3]?.handshakeInfo.address, "127.0.0.1")
        for c in joined.values { c.shutdown() }
        wait(for: [two.expectation, three.expectation], timeout: 10)
        XCTAssertEqual(two.exit, .shutdownRequested)
    }

    func testALostRankRejoinsOnlyOnceItIsDown() async throws {
        // A head with no local rank: ranks 0 and 1 both remote.
        acceptor.stop()
        let admission = RankAdmission(size: 2, localRanks: 0..<0, modelIdentity: "fnv1a64:aaaa", model: "/head/model", blockSize: 4)
        acceptor = try RemoteRankAcceptor(
            address: .tcp(host: "127.0.0.1", port: 0), secret: testSecret, admission: admission, liveness: EngineRPCLiveness(timeout: 10),
            logger: Logger(label: "test"), helloTimeout: 5)
        acceptor.start()
        let zero = join(hello(rank: 0, size: 2))
        let one = join(hello(rank: 1, size: 2))
        let joined = try acceptor.waitForAll(timeout: 10)
        let liveness = EngineRPCLiveness(timeout: 2)
        let dp = try DataParallelEngineClient(ranks: [0, 1].map { AsyncEngineClient(rpc: joined[$0]!, liveness: liveness) })
        dp.start()
        acceptor.serve(isServing: { dp.isUp($0) }) { c in
            try dp.rejoin(rank: c.handshakeInfo.dataParallelRank, client: AsyncEngineClient(rpc: c, liveness: liveness))
        }
        XCTAssertTrue(refusal(join(hello(rank: 1, size: 2))).contains("rank 1 has already joined and is live"))
        // Rank 1's engine goes away: the head marks it down, and the same rank joins again.
        backends[1].shutdown()
        dp.client(1).rpc.shutdown(reason: "test: engine lost")
        await fulfillment(of: [one.expectation], timeout: 10)
        let down = Date().addingTimeInterval(5)
        while dp.isUp(1) && Date() < down { try await Task.sleep(nanoseconds: 10_000_000) }
        XCTAssertFalse(dp.isUp(1))
        let back = join(hello(rank: 1, size: 2))
        let up = Date().addingTimeInterval(10)
        while !dp.isUp(1) && Date() < up { try await Task.sleep(nanoseconds: 10_000_000) }
        XCTAssertTrue(dp.isUp(1), "rank 1 rejoined")
        var p = SamplingParams.greedy
        p.maxTokens = 2
        var got: [Int] = []
        for try await o in dp.generate(
            EngineRequest(
                requestId: "after", promptTokenIds: [5], sampling: p, eosTokenIds: [], arrivalTime: 0,
                dataParallelRank: 1))
        {
            got += o.newTokenIds
        }
        XCTAssertEqual(got, [6, 7], "the rejoined rank serves")
        for r in 0..<2 { dp.client(r).rpc.shutdown() }
        await fulfillment(of: [zero.expectation, back.expectation], timeout: 10)
        XCTAssertEqual(back.exit, .shutdownRequested)
    }

    func testASilentPeerIsLostAfterTheHeartbeatTimeoutBothWays() throws {
        // Front-end side: an engine that never sends (no heartbeats, no stats change) is lost after the timeout.
        let (front, engine) = try EngineRPCConnection.pair()
        try engine.send(.hello(hello(rank: 0)))
        let client = try EngineCoreRPCClient(connection: front)
        let lost = expectation(description: "front-end gave the engine up")
        var why = ""
        client.start(onOutputs: { _ in }, liveness: EngineRPCLiveness(timeout: 0.5)) { reason in
            why = reason; lost.fulfill()
        }
        wait(for: [lost], timeout: 10)
        XCTAssertTrue(why.contains("nothing received from the peer for 0.5 s"), why)
        engine.close()

        // Engine side: a front-end that goes silent after the handshake is given up, and the engine returns.
        let (front2, engine2) = try EngineRPCConnection.pair()
        let backend = TestEngineBackend()
        backends.append(backend)
        let server = EngineCoreRPCServer(
            connection: engine2, handshake: hello(rank: 0), backend: backend,
            liveness: EngineRPCLiveness(timeout: 0.5))
        let box = XCTestExpectation.Box(expectation(description: "engine returned"))
        Thread {
            box.exit = server.run(); box.expectation.fulfill()
        }.start()
        guard case .hello? = try front2.receive() else { return XCTFail("no hello") }
        try front2.send(.helloAck)
        wait(for: [box.expectation], timeout: 10)
        guard case .frontEndGone(let reason)? = box.exit else { return XCTFail("\(String(describing: box.exit))") }
        XCTAssertTrue(reason.contains("nothing received from the peer"), reason)
        front2.close()
    }
}

extension XCTestExpectation {
    /// An expectation with the engine side's exit, filled in by the engine thread.
    final class Box: @unchecked Sendable {
        let expectation: XCTestExpectation
        var exit: EngineCoreRPCServer.Exit?
        init(_ e: XCTestExpectation) { expectation = e }
    }
}
