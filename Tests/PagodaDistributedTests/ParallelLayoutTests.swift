import XCTest

@testable import PagodaDistributed

final class ParallelLayoutTests: XCTestCase {
    func testRanksFollowVLLMLayout() {
        let l = ParallelLayout(tensorParallelSize: 2, pipelineParallelSize: 3)
        XCTAssertEqual(l.workersPerEngine, 6)
        XCTAssertEqual(l.workerRank(ppRank: 2, tpRank: 1), 5)
        XCTAssertEqual(l.tensorGroup(ppRank: 1).ranks, [2, 3])
        XCTAssertEqual(l.pipelineGroup(tpRank: 1).ranks, [1, 3, 5])
        XCTAssertEqual(l.driverRank, 4)
        XCTAssertEqual(l.pipelineGroup(tpRank: 1).groupRank(of: 5), 2)
        XCTAssertNil(l.tensorGroup(ppRank: 0).groupRank(of: 4))
        for r in 0..<6 { XCTAssertEqual(l.workerRank(ppRank: l.ppRank(ofWorker: r), tpRank: l.tpRank(ofWorker: r)), r) }
    }

    func testAddressParsing() throws {
        XCTAssertEqual(try CommunicatorAddress(parsing: "shm:/pagoda-1-tp0"), .sharedMemory(name: "/pagoda-1-tp0"))
        XCTAssertEqual(try CommunicatorAddress(parsing: "tcp:127.0.0.1:2900"), .tcp(host: "127.0.0.1", port: 2900))
        XCTAssertThrowsError(try CommunicatorAddress(parsing: "tcp:127.0.0.1"))
        XCTAssertThrowsError(try CommunicatorAddress(parsing: "shm:noslash"))
    }

    func testSingleRankIsIdentity() throws {
        let c = SingleRankCommunicator()
        XCTAssertEqual(try CollectiveSelfTest.run(c, counts: [1, 100]), [])
    }
}
