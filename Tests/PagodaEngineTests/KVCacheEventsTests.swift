import XCTest

@testable import PagodaEngine

/// The prefix-cache changes an engine publishes reproduce, applied in order, exactly the set of block
/// hashes its prefix cache holds — the data-parallel front-end routes by that set.
final class KVCacheEventsTests: XCTestCase {
    func testEventsReproduceTheCachedSetThroughEvictionAndReset() throws {
        let core = try makeToyEngine(numBlocks: 12, blockSize: 4, maxNumSeqs: 4, maxModelLen: 40)
        core.recordsKVEvents = true
        var mirror = Set<UInt64>()
        func sync() {
            let e = core.takeKVEvents()
            e.apply(to: &mirror)
            // Encoded as the engine RPC sends it.
            let frame = try! EngineRPCFrame.encode(.kvEvents(e))
            guard case .kvEvents(let back) = try! EngineRPCFrame.decode(body: frame.dropFirst(4)) else { return XCTFail("kind") }
            XCTAssertEqual(back, e)
        }
        func cached() -> Set<UInt64> {
            Set((0..<core.numBlocks).compactMap { core.scheduler.kvCacheManager.blockPool.blockHash[$0]?.value })
        }
        // Enough distinct prompts to fill the 12 blocks several times over: blocks are evicted and re-stored.
        for round in 0..<4 {
            for i in 0..<3 {
                try core.addRequest(request("r\(round)-\(i)", toyPrompt(10 * round + i, length: 9), greedy(maxTokens: 3)))
            }
            _ = try runToCompletion(core)
            sync()
            XCTAssertEqual(mirror, cached(), "round \(round)")
            XCTAssertFalse(mirror.isEmpty)
        }
        // The same prompt again: its blocks come back from the cache, nothing new is stored.
        try core.addRequest(request("again", toyPrompt(30, length: 9), greedy(maxTokens: 1)))
        _ = try runToCompletion(core)
        sync()
        XCTAssertEqual(mirror, cached())
        XCTAssertTrue(core.scheduler.kvCacheManager.resetPrefixCache())
        sync()
        XCTAssertEqual(mirror, [])
        XCTAssertTrue(core.takeKVEvents().isEmpty)
    }

    func testNothingIsRecordedUnlessAsked() throws {
        let core = try makeToyEngine()
        try core.addRequest(request("a", toyPrompt(1, length: 20), greedy(maxTokens: 2)))
        _ = try runToCompletion(core)
        XCTAssertTrue(core.takeKVEvents().isEmpty)
    }
}
