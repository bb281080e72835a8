import PagodaTestSupport
import XCTest

/// Every tiny model of shared/conformance reproduces its reference.json and long-prompt logits, unsplit
/// and split by tensor and pipeline parallelism in-process. Skipped (with the reason) when the
/// conformance data is absent.
final class ConformanceTests: XCTestCase {
    func models() throws -> [String] {
        guard ConformanceData.root != nil else { throw XCTSkip(ConformanceData.skipReason) }
        let names = ConformanceData.modelNames()
        XCTAssertEqual(names.count, 6, "expected the 6 tiny models")
        return names
    }

    func testAllModelsMatchReference() throws {
        for name in try models() {
            let worst = try ConformanceChecker(model: name).check()
            print("conformance \(name): max |logit - reference| = \(worst)")
        }
    }

    /// `--dtype bfloat16`: bf16 activations in the GEMMs, within the README's bf16-activation tolerance.
    func testBF16ActivationsMatchReferenceWithinBF16Tolerance() throws {
        for name in try models() {
            let worst = try ConformanceChecker(model: name).check(precision: .bfloat16)
            print("conformance \(name) bf16 activations: max |logit - reference| = \(worst)")
        }
    }

    func testChunkedPrefillMatchesReference() throws {
        for name in try models() { try ConformanceChecker(model: name).check(chunkSize: 32) }
    }

    func testTensorParallel2MatchesReference() throws {
        for name in try models() { try ConformanceChecker(model: name).check(tp: 2) }
    }

    func testPipelineParallel2MatchesReference() throws {
        for name in try models() { try ConformanceChecker(model: name).check(pp: 2) }
    }

    func testTensorAndPipelineParallel2x2MatchesReference() throws {
        for name in try models() { try ConformanceChecker(model: name).check(tp: 2, pp: 2, chunkSize: 64) }
    }
}
