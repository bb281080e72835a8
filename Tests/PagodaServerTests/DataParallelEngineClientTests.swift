import Foundation
import PagodaEngine
import PagodaEngineTestSupport
import XCTest

@testable import PagodaServer

/// Two scripted engines behind one `DataParallelEngineClient`, over real engine-RPC socket pairs.
final class DataParallelEngineClientTests: XCTestCase {
    var connections: [EngineRPCConnection] = []
    var backends: [TestEngineBackend] = []

    /// Engines with the given step intervals (a long one: an engine that produces nothing for that long).
    func makeClient(stepIntervals: [Double], model: [String]? = nil, firstRank: Int = 0) throws -> DataParallelEngineClient {
        var clients: [AsyncEngineClient] = []
        for (i, interval) in stepIntervals.enumerated() {
            let r = firstRank + i
            let backend = TestEngineBackend(stepInterval: interval)
            backends.append(backend)
            let h = EngineHandshake(model: model?[i] ?? "/models/test", numBlocks: 64, blockSize: 4, maxModelLen: 64,
                                    vocabSize: 1000, eosTokenIds: [0], dataParallelRank: r, dataParallelSize: stepIntervals.count, pid: 100 + r)
            let (rpc, engine) = try backend.serveOverRPC(h)
            connections.append(engine)
            clients.append(AsyncEngineClient(rpc: rpc))
        }
        let dp = try DataParallelEngineClient(ranks: clients, firstRank: firstRank)
        dp.start()
        return dp
    }

    /// A hybrid server's slice (global ranks 2 and 3): outputs, `engines` and pins speak global ranks.
    func testASliceOfRanksUsesGlobalRanks() async throws {
        let dp = try makeClient(stepIntervals: [0.001, 0.001], firstRank: 2)
        XCTAssertEqual(dp.engines.map(\.rank), [2, 3])
        var ranks: [Int?] = []
        for try await o in dp.generate(request("pinned", rank: 3)) { ranks.append(o.dataParallelRank) }
        XCTAssertEqual(Set(ranks), [3])
        XCTAssertEqual(backends[1].addedRequests.map(\.requestId), ["pinned"])
        do {
            _ = try await tokens(dp.generate(request("elsewhere", rank: 1)))
            XCTFail("rank 1 is not served here")
        } catch let e as DataParallelError {
            XCTAssertEqual(e, .badRank("data_parallel_rank 1 is out of range (2..<4 are served here)"))
        }
    }

    override func tearDown() {
        for c in connections { c.close() }
        for b in backends { b.shutdown() }
    }

    func request(_ id: String, maxTokens: Int = 3, rank: Int? = nil) -> EngineRequest {
        var p = SamplingParams.greedy
        p.maxTokens = maxTokens
        return EngineRequest(requestId: id, promptTokenIds: [1, 2, 3, 10], sampling: p, eosTokenIds: [], arrivalTime: 0,
                             dataParallelRank: rank)
    }

    func tokens(_ stream: AsyncThrowingStream<EngineOutput, Error>) async throws -> [Int] {
        var out: [Int] = []
        for try await o in stream { out += o.newTokenIds }
        return out
    }

    func testARequestNotStartedOnALostRankIsServedByAnother() async throws {
        // Rank 0 never steps within the test: its request has produced nothing when it dies.
        let dp = try makeClient(stepIntervals: [30, 0.001])
        let first = Task { try await self.tokens(dp.generate(self.request("a"))) }
        let deadline = Date().addingTimeInterval(5)
        while backends[0].numRunning == 0 && Date() < deadline { try await Task.sleep(nanoseconds: 2_000_000) }
        XCTAssertEqual(backends[0].numRunning, 1, "the first request goes to rank 0")
        connections[0].close()
        let got = try await first.value
        XCTAssertEqual(got, [11, 12, 13], "served again, by rank 1")
        XCTAssertEqual(backends[1].addedRequests.map(\.requestId), ["a"])
        XCTAssertNil(dp.dead)
        XCTAssertEqual(dp.engines.map { $0.down != nil }, [true, false])
        // Later requests go to the live rank only; a pin on the lost rank is refused.
        for i in 0..<3 {
            let got = try await tokens(dp.generate(request("b\(i)")))
            XCTAssertEqual(got, [11, 12, 13])
        }
        do {
            _ = try await tokens(dp.generate(request("pinned", rank: 0)))
            XCTFail("a pin on a lost rank must fail")
        } catch let e as DataParallelError {
            XCTAssertEqual(e, .rankDown("data_parallel_rank 0 is not serving"))
        }
        // Losing the last rank ends everything: the client is dead.
        connections[1].close()
        let gone = Date().addingTimeInterval(5)
        while dp.dead == nil && Date() < gone { try await Task.sleep(nanoseconds: 2_000_000) }
        XCTAssertNotNil(dp.dead)
        do {
            _ = try await tokens(dp.generate(request("late")))
            XCTFail("no rank is left")
        } catch is EngineDeadError {}
    }

    func testAStreamingRequestOnALostRankEndsWithAnError() async throws {
        let dp = try makeClient(stepIntervals: [0.02, 0.02])
        var seen: [Int] = []
        do {
            for try await o in dp.generate(request("s", maxTokens: 1000, rank: 1)) {
                seen += o.newTokenIds
                if seen.count == 2 { connections[1].close() }
            }
            XCTFail("expected the stream to fail")
        } catch is EngineDeadError {}
        XCTAssertGreaterThanOrEqual(seen.count, 2)
        XCTAssertEqual(backends[0].addedRequests.count, 0, "a started request is not re-sent")
    }

    func testEnginesServingDifferentModelsAreRefused() throws {
        XCTAssertThrowsError(try makeClient(stepIntervals: [1, 1], model: ["/a", "/b"])) { error in
            XCTAssertTrue("\(error)".contains("engine 1 serves /b"), "\(error)")
        }
    }
}
