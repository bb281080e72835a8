import PagodaEngine
import XCTest

@testable import PagodaServer

/// The data-parallel engine selector as a state machine: no threads, no engines.
final class EngineSelectorTests: XCTestCase {
    func stored(_ hashes: [UInt64]) -> KVCacheEvents { KVCacheEvents(changes: hashes.map { .init(hash: $0, stored: true) }) }

    func testLowestScoreWinsAndEqualEnginesTakeTurns() throws {
        var s = EngineSelector(numEngines: 3, policy: .init(prefixAware: false))
        s.update(rank: 0, waiting: 2, running: 4, received: 0)  // 12
        s.update(rank: 1, waiting: 0, running: 3, received: 0)  // 3
        s.update(rank: 2, waiting: 1, running: 0, received: 0)  // 4
        XCTAssertEqual(try s.select(blockHashes: []).get(), 1)
        // Rank 1 now has one request in transit (score 7): rank 2 (4) is lowest.
        XCTAssertEqual(try s.select(blockHashes: []).get(), 2)
        // Equal engines alternate.
        var t = EngineSelector(numEngines: 2, policy: .init(prefixAware: false))
        var picks: [Int] = []
        for _ in 0..<4 {
            let r = try t.select(blockHashes: []).get()
            picks.append(r)
            t.update(rank: r, waiting: 0, running: t.engines[r].running + 1, received: t.engines[r].sent)
        }
        XCTAssertEqual(picks, [0, 1, 0, 1])
    }

    func testRequestsInTransitCountAsWaitingUntilTheEngineReportsThem() throws {
        var s = EngineSelector(numEngines: 2, policy: .init(prefixAware: false))
        for _ in 0..<3 { _ = s.select(blockHashes: [], pinnedRank: 0) }
        XCTAssertEqual(s.engines[0].score, 12)
        // The engine has received two of them; both now wait in its scheduler.
        s.update(rank: 0, waiting: 2, running: 0, received: 2)
        XCTAssertEqual(s.engines[0].score, 12)
        s.update(rank: 0, waiting: 0, running: 3, received: 3)
        XCTAssertEqual(s.engines[0].score, 3)
        // An older report never undoes a newer one's count.
        s.update(rank: 0, waiting: 0, running: 3, received: 1)
        XCTAssertEqual(s.engines[0].inTransit, 0)
    }

    func testLongestCachedPrefixWinsAmongCloseLoadsOnly() throws {
        var s = EngineSelector(numEngines: 2, policy: .init(prefixAware: true, closeLoadAbsolute: 8, closeLoadFraction: 0))
        s.apply(rank: 1, events: stored([10, 11, 12]))
        s.apply(rank: 0, events: stored([10]))
        s.update(rank: 0, waiting: 0, running: 1, received: 0)
        s.update(rank: 1, waiting: 1, running: 2, received: 0)  // 6: within 8 of 1
        XCTAssertEqual(s.matchedPrefix(1, [10, 11, 99]), 2)
        XCTAssertEqual(try s.select(blockHashes: [10, 11, 99]).get(), 1)
        // Too busy: the prefix no longer decides.
        s.update(rank: 1, waiting: 3, running: 2, received: 1)  // 14 + 0 in transit
        XCTAssertEqual(try s.select(blockHashes: [10, 11, 99]).get(), 0)
        // The same comparison with the base score alone ignores the cache.
        var base = EngineSelector(numEngines: 2, policy: .init(prefixAware: false))
        base.apply(rank: 1, events: stored([10, 11, 12]))
        base.update(rank: 1, waiting: 0, running: 2, received: 0)
        XCTAssertEqual(try base.select(blockHashes: [10, 11, 12]).get(), 0)
    }

    func testEvictionsAndResetsAreFollowed() throws {
        var s = EngineSelector(numEngines: 2)
        s.apply(rank: 1, events: stored([1, 2]))
        s.apply(rank: 1, events: KVCacheEvents(changes: [.init(hash: 1, stored: false)]))
        XCTAssertEqual(s.matchedPrefix(1, [1, 2]), 0)
        s.apply(rank: 1, events: stored([1]))
        XCTAssertEqual(s.matchedPrefix(1, [1, 2]), 2)
        s.apply(rank: 1, events: KVCacheEvents(cleared: true))
        XCTAssertEqual(s.engines[1].cachedBlocks, [])
    }

    func testDownRanksGetNothingAndPinsAreChecked() throws {
        var s = EngineSelector(numEngines: 3)
        s.setAlive(rank: 0, false)
        s.setAlive(rank: 2, false)
        for _ in 0..<3 { XCTAssertEqual(try s.select(blockHashes: []).get(), 1) }
        XCTAssertEqual(s.select(blockHashes: [], pinnedRank: 0), .failure(.pinnedRankDown(0)))
        XCTAssertEqual(s.select(blockHashes: [], pinnedRank: 5), .failure(.pinnedRankOutOfRange(5, size: 3)))
        XCTAssertEqual(try s.select(blockHashes: [], pinnedRank: 1).get(), 1)
        s.setAlive(rank: 1, false)
        XCTAssertEqual(s.select(blockHashes: []), .failure(.noLiveEngine))
        // A returning rank starts with a clean slate and takes requests again.
        s.apply(rank: 2, events: stored([7]))
        s.setAlive(rank: 2, true)
        XCTAssertEqual(s.engines[2].cachedBlocks, [])
        XCTAssertEqual(try s.select(blockHashes: []).get(), 2)
    }
}

extension EngineSelectorTests {
    /// A burst sharing a prefix stays on one engine before that engine has published the blocks.
    func testPrefixesInFlightCountUntilTheirRequestEnds() throws {
        var s = EngineSelector(numEngines: 2)
        let a: [UInt64] = [1, 2, 3], b: [UInt64] = [7, 8]
        let first = try s.select(blockHashes: a).get()
        let other = try s.select(blockHashes: b).get()
        XCTAssertNotEqual(first, other)
        // Nothing published yet: the in-flight requests decide.
        for _ in 0..<3 { XCTAssertEqual(try s.select(blockHashes: a).get(), first) }
        XCTAssertEqual(try s.select(blockHashes: b).get(), other)
        // Once every request carrying `a` ended and nothing was published, `a` is nowhere.
        for _ in 0..<4 { s.finished(rank: first, blockHashes: a) }
        XCTAssertEqual(s.matchedPrefix(first, a), 0)
        XCTAssertTrue(s.engines[first].pendingBlocks.isEmpty)
        // Load-only routing keeps no such record.
        var base = EngineSelector(numEngines: 2, policy: .init(prefixAware: false))
        _ = base.select(blockHashes: a)
        XCTAssertTrue(base.engines.allSatisfy { $0.pendingBlocks.isEmpty })
    }
}
