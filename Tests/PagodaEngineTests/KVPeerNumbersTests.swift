import Foundation
import XCTest

@testable import PagodaEngine

/// A KV-transfer peer's numbers are checked before any arithmetic: the head range of a read request and the
/// layout of a same-host copy offer, at the values that once trapped (found writing the KV fuzz targets;
/// their inputs are `regression-*` in Tests/FuzzCorpus/kv-transfer-*).
final class KVPeerNumbersTests: XCTestCase {
    private let cache = KVBlockArena(numLayers: 2, numBlocks: 4, blockSize: 2, numKVHeads: 2, headDim: 4)

    private func request(headStart: Int, headCount: Int) -> KVBlockReadRequest {
        KVBlockReadRequest(
            requestId: "r", blockIds: [1], numLayers: 2, blockSize: 2, headDim: 4, headStart: headStart, headCount: headCount)
    }

    func testAReadRequestsHeadRangeNeverOverflows() {
        XCTAssertNil(KVBlockServer.layoutMismatch(cache, request(headStart: 0, headCount: 2)))
        XCTAssertNil(KVBlockServer.layoutMismatch(cache, request(headStart: 1, headCount: 1)))
        XCTAssertNil(KVBlockServer.layoutMismatch(cache, request(headStart: 5, headCount: 0)), "0 heads only ends the hold")
        for (start, count) in [(1, Int.max), (0, Int.max), (1, 2), (Int.max, 1), (Int.min, 3), (0, -1)] {
            let why = KVBlockServer.layoutMismatch(cache, request(headStart: start, headCount: count))
            XCTAssertNotNil(why, "heads from \(start), \(count) of them")
        }
    }

    func testASameHostOfferThatCannotDescribeTheCacheIsRefused() {
        let good = KVSameHostCopy.Offer(pid: 1, bases: [4096, 8192, 12288, 16384], blockFloats: 16, headStart: 0, headsLocal: 2)
        XCTAssertNil(KVSameHostCopy.mismatch(good, storage: cache, remoteBlockIds: [1, 2], heads: 0..<2))
        var offers: [KVSameHostCopy.Offer] = []
        var o = good
        o.headsLocal = 1 << 62; o.blockFloats = 0; offers.append(o)
        o = good; o.headStart = -(1 << 62); offers.append(o)
        o = good; o.bases = Array(repeating: UInt64.max, count: 4); offers.append(o)
        o = good; o.bases = [0, 0, 0, 0]; offers.append(o)
        o = good; o.bases = [4096]; offers.append(o)
        o = good; o.blockFloats = 17; offers.append(o)
        o = good; o.headStart = 1; offers.append(o)  // heads 0..<2 are then not the producer's
        for offer in offers {
            XCTAssertNotNil(KVSameHostCopy.mismatch(offer, storage: cache, remoteBlockIds: [1, 2], heads: 0..<2), "\(offer)")
        }
        XCTAssertNotNil(KVSameHostCopy.mismatch(good, storage: cache, remoteBlockIds: [-1], heads: 0..<2))
        XCTAssertNotNil(KVSameHostCopy.mismatch(good, storage: cache, remoteBlockIds: [Int.max], heads: 0..<2))
    }
}
