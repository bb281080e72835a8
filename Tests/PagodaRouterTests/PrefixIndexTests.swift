import XCTest
@testable import PagodaRouter

final class PrefixIndexTests: XCTestCase {
    func testKeysChainSoEqualBlocksAfterDifferentPrefixesDiffer() {
        let index = PrefixIndex(blockSize: 4)
        let a = index.blockKeys(Array("AAAAxxxx".utf8))
        let b = index.blockKeys(Array("BBBBxxxx".utf8))
        XCTAssertEqual(a.count, 2)
        XCTAssertNotEqual(a[1], b[1])
        XCTAssertEqual(index.blockKeys(Array("AAAAxxxxyy".utf8)), a)  // a partial tail block is not keyed
    }

    func testLongestMatchStopsAtTheFirstMiss() {
        var index = PrefixIndex(blockSize: 2)
        index.record(index.blockKeys(Array("aabbcc".utf8)), backend: 1)
        let match = index.longestMatch(index.blockKeys(Array("aabbzzcc".utf8)))
        XCTAssertEqual(match?.backend, 1)
        XCTAssertEqual(match?.matchedBlocks, 2)
        XCTAssertNil(index.longestMatch(index.blockKeys(Array("zz".utf8))))
    }

    func testCapacityIsBoundedAndRecentKeysSurvive() {
        var index = PrefixIndex(blockSize: 1, capacity: 100)
        let hot = index.blockKeys([UInt8(7)])
        for i in 0..<10_000 {
            index.record([UInt64(i) &* 0x9E37_79B9_7F4A_7C15], backend: i % 3)
            if i % 10 == 0 { index.record(hot, backend: 2) }
            XCTAssertLessThanOrEqual(index.count, 100)
        }
        XCTAssertEqual(index.longestMatch(hot)?.backend, 2)
    }
}
