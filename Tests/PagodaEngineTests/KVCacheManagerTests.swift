import XCTest
@testable import PagodaEngine

final class KVCacheManagerTests: XCTestCase {
    private func req(_ id: String, _ prompt: [Int]) -> Request {
        Request(EngineRequest(requestId: id, promptTokenIds: prompt, sampling: .greedy, eosTokenIds: [], arrivalTime: 0))
    }

    func testPrefixHitReusesFullBlocksButNeverTheWholePrompt() {
        let kv = KVCacheManager(numBlocks: 10, blockSize: 4, enableCaching: true)
        let a = req("a", Array(0..<12))  // 3 full blocks
        guard case .allocated(let blocksA) = kv.allocateSlots(a, numNewTokens: 12) else { return XCTFail() }
        XCTAssertEqual(blocksA.blockIds.count, 3)
        kv.free(a)
        XCTAssertTrue(kv.isWhole)

        // Same 12 tokens: only 2 blocks may be reused (the last token must be recomputed).
        let b = req("b", Array(0..<12))
        let (hit, n) = kv.getComputedBlocks(b)
        XCTAssertEqual(n, 8)
        XCTAssertEqual(hit.blockIds, Array(blocksA.blockIds.prefix(2)))
        guard case .allocated(let newB) = kv.allocateSlots(b, numNewTokens: 4, numNewComputedTokens: 8, newComputedBlocks: hit)
        else { return XCTFail() }
        XCTAssertEqual(newB.blockIds.count, 1)
        XCTAssertEqual(kv.blockIds(of: "b").prefix(2), blocksA.blockIds.prefix(2))

        // A different second block only matches the first.
        let c = req("c", [0, 1, 2, 3, 9, 9, 9, 9, 1])
        XCTAssertEqual(kv.getComputedBlocks(c).numComputedTokens, 4)
        kv.free(b)
        XCTAssertTrue(kv.isWhole)
    }

    func testAllocationFailureChangesNothing() {
        let kv = KVCacheManager(numBlocks: 4, blockSize: 4, enableCaching: true)
        let a = req("a", Array(0..<10))
        guard case .allocated = kv.allocateSlots(a, numNewTokens: 10) else { return XCTFail() }
        XCTAssertEqual(kv.numFreeBlocks, 1)
        let b = req("b", Array(100..<110))
        XCTAssertEqual(kv.allocateSlots(b, numNewTokens: 10), .noFreeBlocks)
        XCTAssertEqual(kv.numFreeBlocks, 1)
        XCTAssertEqual(kv.blockIds(of: "b"), [])
        kv.free(a)
        XCTAssertTrue(kv.isWhole)
    }

    func testNoCachingWhenDisabled() {
        let kv = KVCacheManager(numBlocks: 8, blockSize: 4, enableCaching: false)
        let a = req("a", Array(0..<12))
        _ = kv.allocateSlots(a, numNewTokens: 12)
        kv.free(a)
        XCTAssertEqual(kv.getComputedBlocks(req("b", Array(0..<12))).numComputedTokens, 0)
    }
}
