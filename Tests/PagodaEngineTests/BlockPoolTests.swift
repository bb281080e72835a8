import XCTest
@testable import PagodaEngine

final class BlockPoolTests: XCTestCase {
    func testFreeQueueRemovesFromTheMiddleAndKeepsOrder() {
        var q = FreeKVCacheBlockQueue(numBlocks: 5)
        XCTAssertEqual(q.orderedBlocks, [0, 1, 2, 3, 4])
        q.remove(2)
        q.remove(0)
        q.remove(4)
        XCTAssertEqual(q.orderedBlocks, [1, 3])
        XCTAssertEqual(q.count, 2)
        q.append(0)
        XCTAssertEqual(q.popFront(), 1)
        XCTAssertEqual(q.orderedBlocks, [3, 0])
        XCTAssertEqual(q.popFront(), 3)
        XCTAssertEqual(q.popFront(), 0)
        XCTAssertNil(q.popFront())
        q.append(4)
        XCTAssertEqual(q.orderedBlocks, [4])
    }

    func testFreedBlocksAreEvictedLeastRecentlyUsedFirst() {
        let pool = BlockPool(numBlocks: 6, enableCaching: true)
        let a = pool.getNewBlocks(3)  // 0,1,2
        let b = pool.getNewBlocks(2)  // 3,4
        XCTAssertEqual(a, [0, 1, 2]); XCTAssertEqual(b, [3, 4])
        XCTAssertEqual(pool.numFreeBlocks, 1)
        pool.freeBlocks(b.reversed())  // request b ends first: its tail block goes first in line
        pool.freeBlocks(a.reversed())
        XCTAssertEqual(pool.freeBlockOrder, [5, 4, 3, 2, 1, 0])
        XCTAssertEqual(pool.getNewBlocks(2), [5, 4])
    }

    func testCachedFreeBlockIsReusableUntilEvicted() {
        let pool = BlockPool(numBlocks: 3, enableCaching: true)
        let blocks = pool.getNewBlocks(2)
        let h0 = BlockHash(parent: nil, tokenIds: [1, 2, 3, 4][...])
        let h1 = BlockHash(parent: h0, tokenIds: [5, 6, 7, 8][...])
        pool.cacheFullBlocks(blocks, hashes: [h0, h1], from: 0, to: 2)
        pool.freeBlocks(blocks.reversed())
        XCTAssertEqual(pool.numFreeBlocks, 3)
        XCTAssertEqual(pool.getCachedBlock(h0), blocks[0])
        // A hit takes the block back out of the middle of the free queue.
        pool.touch([blocks[0]])
        XCTAssertEqual(pool.refCount(of: blocks[0]), 1)
        XCTAssertEqual(pool.numFreeBlocks, 2)
        // New allocations evict: block 2 (never cached) first, then block 1 (h1) which loses its hash.
        XCTAssertEqual(pool.getNewBlocks(2), [2, 1])
        XCTAssertNil(pool.getCachedBlock(h1))
        XCTAssertEqual(pool.getCachedBlock(h0), 0)
    }

    func testBlockHashChainsOverTheParent() {
        let a = BlockHash(parent: nil, tokenIds: [1, 2][...])
        let b = BlockHash(parent: nil, tokenIds: [3, 2][...])
        let c1 = BlockHash(parent: a, tokenIds: [9, 9][...])
        let c2 = BlockHash(parent: b, tokenIds: [9, 9][...])
        XCTAssertNotEqual(c1, c2)
        XCTAssertEqual(c1, BlockHash(parent: a, tokenIds: [9, 9][...]))
        XCTAssertNotEqual(BlockHash(parent: a, tokenIds: [9, 9][...], extraKeys: [1]), c1)
    }
}
