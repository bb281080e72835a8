import XCTest

@testable import PagodaKernels

/// `TopKRouting` against its twin `ReferenceKernels.topKRouting`: same experts in the same order,
/// weights within 1e-6 (float32 softmax vs. a Double one, values ≤ 1).
final class TopKRoutingTests: XCTestCase {
    /// Runs the kernel over `rows` rows of `logits` [rows, e]; returns each row's experts and weights.
    func route(_ logits: [Float], e: Int, k: Int, renormalize: Bool) -> [(experts: [Int], weights: [Float])] {
        let rows = logits.count / e
        var scratch = logits
        var experts = [Int32](repeating: -7, count: rows * k), weights = [Float](repeating: .nan, count: rows * k)
        TopKRouting.run(
            logits: &scratch, count: rows, numExperts: e, topK: k, renormalize: renormalize, experts: &experts,
            weights: &weights)
        return (0..<rows).map { r in
            (experts[r * k..<(r + 1) * k].map { Int($0) }, Array(weights[r * k..<(r + 1) * k]))
        }
    }

    func assertMatchesReference(_ logits: [Float], e: Int, k: Int, renormalize: Bool, line: UInt = #line) {
        let fast = route(logits, e: e, k: k, renormalize: renormalize)
        for (r, got) in fast.enumerated() {
            let ref = ReferenceKernels.topKRouting(logits: Array(logits[r * e..<(r + 1) * e]), topK: k, renormalize: renormalize)
            XCTAssertEqual(got.experts, ref.experts, "row \(r) k \(k) renormalize \(renormalize)", line: line)
            XCTAssertLessThan(maxAbsDiff(got.weights, ref.weights), 1e-6, "row \(r)", line: line)
        }
    }

    func testRandomLogitsMatchReferenceForEveryKWithAndWithoutRenormalization() {
        var rng = SeededRandom(11)
        for e in [1, 4, 8, 60] {
            let logits = rng.floats(9 * e).map { $0 * 8 }
            for k in Set([1, 2, 4, e]).filter({ $0 <= e }).sorted() {
                for renormalize in [false, true] {
                    assertMatchesReference(logits, e: e, k: k, renormalize: renormalize)
                }
            }
        }
    }

    func testTiesGoToTheLowerExpertIndex() {
        // Row 0: experts 1, 3, 5 tie for first; row 1: all equal.
        let logits: [Float] = [0.1, 2, -1, 2, 0.3, 2, 0, 0, 0, 0, 0, 0]
        let fast = route(logits, e: 6, k: 2, renormalize: true)
        XCTAssertEqual(fast[0].experts, [1, 3])
        XCTAssertEqual(fast[0].weights, [0.5, 0.5])
        XCTAssertEqual(fast[1].experts, [0, 1])
        for k in [1, 2, 3, 6] {
            for renormalize in [false, true] { assertMatchesReference(logits, e: 6, k: k, renormalize: renormalize) }
        }
    }

    func testKEqualToExpertsKeepsTheWholeSoftmaxInDescendingOrder() {
        let logits: [Float] = [0.5, -2, 3, 1]
        let got = route(logits, e: 4, k: 4, renormalize: false)[0]
        XCTAssertEqual(got.experts, [2, 3, 0, 1])
        let softmax = ReferenceKernels.softmax(logits)
        XCTAssertLessThan(maxAbsDiff(got.weights, [2, 3, 0, 1].map { softmax[$0] }), 1e-6)
        XCTAssertEqual(got.weights.reduce(0, +), 1, accuracy: 1e-6)
    }

    func testRenormalizationMakesTheChosenWeightsSumToOne() {
        let logits: [Float] = [1, 2, 3, 4, 5, 6, 7, 8]
        let plain = route(logits, e: 8, k: 2, renormalize: false)[0]
        let renormalized = route(logits, e: 8, k: 2, renormalize: true)[0]
        XCTAssertEqual(plain.experts, [7, 6])
        XCTAssertLessThan(plain.weights.reduce(0, +), 0.9)
        XCTAssertEqual(renormalized.weights.reduce(0, +), 1, accuracy: 1e-6)
        XCTAssertEqual(renormalized.weights[0] / renormalized.weights[1], plain.weights[0] / plain.weights[1], accuracy: 1e-5)
    }
}
