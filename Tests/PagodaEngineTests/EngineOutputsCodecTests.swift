import XCTest

@testable import PagodaEngine

/// The engine RPC's binary outputs payload: prompt logprobs (flag 32) and the engine-failure mark (flag 128).
final class EngineOutputsCodecTests: XCTestCase {
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

    /// An engine failure (flag 128) stays distinguishable from a rejected request across the RPC.
    func testAnEngineFailureIsMarkedApartFromARejectedRequest() throws {
        var failed = EngineOutput(requestId: "a", newTokenIds: [], finishReason: .error, error: "rank 1 lost")
        failed.engineFailed = true
        let rejected = EngineOutput(requestId: "b", newTokenIds: [], finishReason: .error, error: "prompt too long")
        var bytes: [UInt8] = []
        EngineOutputsCodec.encode([failed, rejected], into: &bytes)
        let back = try EngineOutputsCodec.decode(bytes)
        XCTAssertEqual(back[0].engineFailed, true)
        XCTAssertEqual(back[0].error, "rank 1 lost")
        XCTAssertNil(back[1].engineFailed)
        XCTAssertEqual(back[1].error, "prompt too long")
    }
}
