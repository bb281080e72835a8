import XCTest

@testable import PagodaDistributed

/// The expert ownership map: every expert has exactly one owner, runs are contiguous and balanced.
final class ExpertPlacementTests: XCTestCase {
    func testEveryExpertHasOneOwnerAndRunsAreBalanced() throws {
        for (e, n) in [(8, 2), (8, 4), (60, 4), (7, 3), (128, 6), (4, 4)] {
            let p = try ExpertPlacement(numExperts: e, groupSize: n)
            var seen = [Int](repeating: 0, count: e)
            var sizes: [Int] = []
            var next = 0
            for r in 0..<n {
                let run = p.experts(ofRank: r)
                XCTAssertEqual(run.lowerBound, next, "contiguous, in rank order")
                next = run.upperBound
                sizes.append(run.count)
                for x in run {
                    seen[x] += 1
                    XCTAssertEqual(p.owner(ofExpert: x), r, "expert \(x) of \(e) over \(n)")
                }
            }
            XCTAssertEqual(seen, [Int](repeating: 1, count: e))
            XCTAssertLessThanOrEqual(sizes.max()! - sizes.min()!, 1)
        }
        XCTAssertEqual(try ExpertPlacement(numExperts: 8, groupSize: 2).experts(ofRank: 1), 4..<8)
        XCTAssertEqual(try ExpertPlacement(numExperts: 7, groupSize: 3).experts(ofRank: 0), 0..<3)
    }

    func testRankFromLayoutAndTooFewExperts() {
        XCTAssertEqual(ExpertPlacement.expertRank(dataParallelRank: 1, tensorRank: 0, tensorParallelSize: 2), 2)
        XCTAssertEqual(ExpertPlacement.expertRank(dataParallelRank: 1, tensorRank: 1, tensorParallelSize: 2), 3)
        XCTAssertThrowsError(try ExpertPlacement(numExperts: 2, groupSize: 4))
    }
}
