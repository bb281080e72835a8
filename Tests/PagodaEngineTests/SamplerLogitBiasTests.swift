import XCTest
@testable import PagodaEngine

/// `logit_bias` in the sampler: added before greedy and random picks, after min-tokens, before
/// penalties (vLLM's order); logprobs stay those of the raw logits.
final class SamplerLogitBiasTests: XCTestCase {
    final class State: SamplingState {
        var sampling: SamplingParams
        var promptTokenIds: [Int] = []
        var outputTokenIds: [Int] = []
        var eosTokenIds: [Int] = [0]
        var generator: SamplingRNG
        init(_ p: SamplingParams) { sampling = p; generator = SamplingRNG(seed: p.seed ?? 1) }
    }

    private let base: [Float] = [3, 1, 2, 5, 4.5, 0, -1, 4.9]

    private func sample(_ p: SamplingParams, _ logits: [Float]? = nil) -> (Int, TokenLogprob?) {
        var row = logits ?? base
        let sampler = Sampler(vocabSize: row.count)
        return row.withUnsafeMutableBufferPointer { sampler.sample(logits: $0.baseAddress!, state: State(p)) }
    }

    private func greedy(bias: [(Int, Float)]) -> SamplingParams {
        var p = SamplingParams.greedy
        p.logitBias = bias.map { LogitBias(tokenId: $0.0, bias: $0.1) }
        return p
    }

    func testPositiveBiasMakesGreedyPickTheToken() {
        XCTAssertEqual(sample(.greedy).0, 3)
        XCTAssertEqual(sample(greedy(bias: [(6, 100)])).0, 6)
        XCTAssertEqual(sample(greedy(bias: [(1, 4.5)])).0, 1)  // 1 + 4.5 = 5.5 > 5
    }

    func testNegativeBiasOnTheGreedyTokenMovesThePickToTheRunnerUp() {
        XCTAssertEqual(sample(greedy(bias: [(3, -100)])).0, 7)
        XCTAssertEqual(sample(greedy(bias: [(3, -100), (7, -100)])).0, 4)
        XCTAssertEqual(sample(greedy(bias: [(3, -0.05)])).0, 3)  // 4.95 still beats 4.9
    }

    func testBiasSteersRandomSampling() {
        var p = SamplingParams()
        p.temperature = 1
        p.logitBias = [LogitBias(tokenId: 5, bias: 100)]
        for seed in 0..<20 {
            p.seed = UInt64(seed)
            XCTAssertEqual(sample(p).0, 5)
        }
    }

    func testLogprobsAreThoseOfTheRawLogits() {
        var p = greedy(bias: [(6, 100)])
        p.logprobs = 1
        let (token, lp) = sample(p)
        XCTAssertEqual(token, 6)
        let unbiased: SamplingParams = { var q = SamplingParams.greedy; q.logprobs = 1; return q }()
        let raw = sample(unbiased).1!
        XCTAssertEqual(lp!.top.first?.tokenId, 3)
        XCTAssertEqual(lp!.top.first!.logprob, raw.logprob, accuracy: 1e-6)
    }

    func testBiasComesBeforeTheRepetitionPenalty() {
        // Token 1 (logit 1) biased to 6, then divided by the penalty 2: 3 < 5, so 3 stays the pick.
        // Penalising first (1 / 2 = 0.5) and biasing after (6.5) would pick 1.
        var p = greedy(bias: [(1, 5)])
        p.repetitionPenalty = 2
        let st = State(p)
        st.promptTokenIds = [1]
        var row = base
        let token = row.withUnsafeMutableBufferPointer { Sampler(vocabSize: 8).sample(logits: $0.baseAddress!, state: st).token }
        XCTAssertEqual(token, 3)
    }

    func testCodableRoundTripKeepsTheBias() throws {
        let p = greedy(bias: [(2, -3.5), (7, 100)])
        let back = try JSONDecoder().decode(SamplingParams.self, from: JSONEncoder().encode(p))
        XCTAssertEqual(back, p)
    }
}
