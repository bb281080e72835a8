import XCTest

@testable import PagodaEngine

/// Prompt logprobs cross the engine RPC's binary outputs payload (flag 32) with their ranks.
final class EngineOutputsCodecPromptLogprobsTests: XCTestCase {
    func testPromptLogprobsRoundTripBesideTheOtherFields() throws {
        var o = EngineOutput(
            requestId: "r-1", newTokenIds: [7], newLogprobs: [TokenLogprob(tokenId: 7, logprob: -0.5, top: [])],
            finishReason: .length, numCachedTokens: 0)
        o.promptLogprobs = [
            TokenLogprob(tokenId: 3, logprob: -1.25, top: [TopLogprob(tokenId: 9, logprob: -0.1)], rank: 4),
            TokenLogprob(tokenId: 5, logprob: -0.75, top: [], rank: 1),
        ]
        let plain = EngineOutput(requestId: "r-2", newTokenIds: [1, 2])
        var bytes: [UInt8] = []
        EngineOutputsCodec.encode([o, plain], into: &bytes)
        let back = try EngineOutputsCodec.decode(bytes)
        XCTAssertEqual(back.count, 2)
        XCTAssertEqual(back[0].promptLogprobs, o.promptLogprobs)
        XCTAssertEqual(back[0].newLogprobs, o.newLogprobs)
        XCTAssertEqual(back[0].finishReason, .length)
        XCTAssertNil(back[1].promptLogprobs)
        XCTAssertEqual(back[1].newTokenIds, [1, 2])
    }
}
