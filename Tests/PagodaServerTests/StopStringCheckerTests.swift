import XCTest
@testable import PagodaServer

/// Stop strings with vLLM's semantics: matches that span token boundaries, truncation, the
/// held-back tail, and include_stop_str_in_output.
final class StopStringCheckerTests: XCTestCase {
    func scalars(_ s: String) -> [Unicode.Scalar] { Array(s.unicodeScalars) }

    func testMatchSpanningPiecesTruncatesBeforeTheStop() {
        let c = StopStringChecker(stops: ["END"], includeStopStrInOutput: false)
        XCTAssertEqual(c.bufferLength, 2)
        XCTAssertNil(c.check(scalars("abcEN"), newCount: 2))
        let m = c.check(scalars("abcEND!"), newCount: 2)
        XCTAssertEqual(m?.stopIndex, 0); XCTAssertEqual(m?.truncateTo, 3)
    }

    func testOnlyTheTailTheNewTextTouchesIsSearched() {
        let c = StopStringChecker(stops: ["ab"], includeStopStrInOutput: false)
        // "ab" lies wholly in old text: it would have matched earlier, so it is not re-reported.
        XCTAssertNil(c.check(scalars("abxyz"), newCount: 1))
    }

    func testIncludeStopStrKeepsItAndHoldsNothingBack() {
        let c = StopStringChecker(stops: ["\n\n", "x"], includeStopStrInOutput: true)
        XCTAssertEqual(c.bufferLength, 0)
        let m = c.check(scalars("hi\n\nthere"), newCount: 7)
        XCTAssertEqual(m?.stopIndex, 0); XCTAssertEqual(m?.truncateTo, 4)
    }

    func testMultibyteCharactersCountAsOne() {
        let c = StopStringChecker(stops: ["é!"], includeStopStrInOutput: false)
        let m = c.check(scalars("caé!"), newCount: 1)
        XCTAssertEqual(m?.truncateTo, 2)
    }
}
