import XCTest
@testable import PagodaEngine

/// `SamplingParams.validate`, the one check of sampling parameters (server and `LLM` both use it):
/// each bad value is an `EngineError.invalidRequest` naming the parameter by its OpenAI name.
final class SamplingParamsValidationTests: XCTestCase {
    private func parameter(_ change: (inout SamplingParams) -> Void, vocabSize: Int = 100) -> String? {
        var p = SamplingParams()
        change(&p)
        do {
            try p.validate(vocabSize: vocabSize)
            return nil
        } catch EngineError.invalidRequest(let name, _) {
            return name
        } catch {
            XCTFail("unexpected \(error)"); return nil
        }
    }

    func testDefaultsAndBoundaryValuesPass() {
        XCTAssertNil(parameter { _ in })
        XCTAssertNil(parameter {
            $0.temperature = 0; $0.topP = 1; $0.topK = -1; $0.minP = 1; $0.presencePenalty = -2; $0.frequencyPenalty = 2
            $0.maxTokens = 1; $0.minTokens = 1; $0.stopTokenIds = [0, 99]; $0.logprobs = 20
            $0.logitBias = [LogitBias(tokenId: 0, bias: -100), LogitBias(tokenId: 99, bias: 100)]
        })
    }

    func testEachBadValueNamesItsParameter() {
        XCTAssertEqual(parameter { $0.temperature = -0.1 }, "temperature")
        XCTAssertEqual(parameter { $0.temperature = .infinity }, "temperature")
        XCTAssertEqual(parameter { $0.topP = 0 }, "top_p")
        XCTAssertEqual(parameter { $0.topP = 1.01 }, "top_p")
        XCTAssertEqual(parameter { $0.topK = -2 }, "top_k")
        XCTAssertEqual(parameter { $0.minP = 1.5 }, "min_p")
        XCTAssertEqual(parameter { $0.presencePenalty = 2.5 }, "presence_penalty")
        XCTAssertEqual(parameter { $0.frequencyPenalty = -3 }, "frequency_penalty")
        XCTAssertEqual(parameter { $0.repetitionPenalty = 0 }, "repetition_penalty")
        XCTAssertEqual(parameter { $0.maxTokens = 0 }, "max_tokens")
        XCTAssertEqual(parameter { $0.minTokens = -1 }, "min_tokens")
        XCTAssertEqual(parameter { $0.maxTokens = 4; $0.minTokens = 5 }, "min_tokens")
        XCTAssertEqual(parameter { $0.stopTokenIds = [100] }, "stop_token_ids")
        XCTAssertEqual(parameter { $0.stopTokenIds = [-1] }, "stop_token_ids")
        XCTAssertEqual(parameter { $0.logprobs = 21 }, "logprobs")
        XCTAssertEqual(parameter { $0.promptLogprobs = 21 }, "prompt_logprobs")
        XCTAssertNil(parameter { $0.promptLogprobs = 5 })
    }

    func testLogitBiasIdsRangeAndDuplicates() {
        XCTAssertEqual(parameter { $0.logitBias = [LogitBias(tokenId: 100, bias: 1)] }, "logit_bias")
        XCTAssertEqual(parameter { $0.logitBias = [LogitBias(tokenId: -1, bias: 1)] }, "logit_bias")
        XCTAssertEqual(parameter { $0.logitBias = [LogitBias(tokenId: 3, bias: 100.5)] }, "logit_bias")
        XCTAssertEqual(parameter { $0.logitBias = [LogitBias(tokenId: 3, bias: -.infinity)] }, "logit_bias")
        XCTAssertEqual(parameter { $0.logitBias = [LogitBias(tokenId: 3, bias: 1), LogitBias(tokenId: 3, bias: 2)] }, "logit_bias")
    }

    func testTheEngineRejectsThroughTheSameValidator() {
        let r = EngineRequest(requestId: "r", promptTokenIds: [1, 2], sampling: {
            var p = SamplingParams(); p.logitBias = [LogitBias(tokenId: 500, bias: 1)]; return p
        }(), eosTokenIds: [0], arrivalTime: 0)
        XCTAssertThrowsError(try RequestValidator.validate(r, vocabSize: 100, maxModelLen: 64)) { error in
            XCTAssertEqual(error as? EngineError, .invalidRequest(parameter: "logit_bias",
                                                                  reason: "token id 500 is outside the vocabulary (0..<100)"))
        }
    }
}
