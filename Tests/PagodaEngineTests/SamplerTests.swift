import XCTest
@testable import PagodaEngine

final class SamplerTests: XCTestCase {
    final class State: SamplingState {
        var sampling: SamplingParams
        var promptTokenIds: [Int] = []
        var outputTokenIds: [Int] = []
        var eosTokenIds: [Int] = [0]
        var generator: SamplingRNG
        init(_ p: SamplingParams) { sampling = p; generator = SamplingRNG(seed: p.seed ?? 1) }
    }

    private let vocab = 8
    private func sample(_ logits: [Float], _ st: State, _ s: Sampler? = nil) -> (Int, TokenLogprob?) {
        var row = logits
        return row.withUnsafeMutableBufferPointer { (s ?? Sampler(vocabSize: logits.count)).sample(logits: $0.baseAddress!, state: st) }
    }
    private let base: [Float] = [3, 1, 2, 5, 4.5, 0, -1, 4.9]

    func testGreedyAndTopKOneAgree() {
        XCTAssertEqual(sample(base, State(.greedy)).0, 3)
        var p = SamplingParams(); p.topK = 1
        for seed in 0..<5 { p.seed = UInt64(seed); XCTAssertEqual(sample(base, State(p)).0, 3) }
    }

    func testTopKAndTopPRestrictTheDraw() {
        var p = SamplingParams(); p.topK = 3; p.temperature = 5
        var seen = Set<Int>()
        let st = State(p)
        let s = Sampler(vocabSize: vocab)
        for _ in 0..<300 { seen.insert(sample(base, st, s).0) }
        XCTAssertEqual(seen, [3, 7, 4])
        var q = SamplingParams(); q.topP = 0.5; q.temperature = 1
        let st2 = State(q)
        seen = []
        for _ in 0..<300 { seen.insert(sample(base, st2, s).0) }
        XCTAssertEqual(seen, [3, 7])  // p(3)≈0.37, p(7)≈0.33: together past 0.5
        var m = SamplingParams(); m.minP = 0.5
        let st3 = State(m)
        seen = []
        for _ in 0..<300 { seen.insert(sample(base, st3, s).0) }
        XCTAssertEqual(seen, [3, 7, 4])  // exp(4.5-5)=0.61 ≥ 0.5, exp(3-5) < 0.5
    }

    func testSeededDrawsRepeat() {
        var p = SamplingParams(); p.seed = 9; p.temperature = 2
        let a = (0..<20).map { _ in 0 }.reduce(into: (State(p), [Int]())) { acc, _ in acc.1.append(sample(base, acc.0).0) }.1
        let b = (0..<20).map { _ in 0 }.reduce(into: (State(p), [Int]())) { acc, _ in acc.1.append(sample(base, acc.0).0) }.1
        XCTAssertEqual(a, b)
        XCTAssertGreaterThan(Set(a).count, 1)
    }

    func testMinTokensSuppressesEOSAndStopIds() {
        var p = SamplingParams.greedy; p.minTokens = 2; p.stopTokenIds = [7]
        let st = State(p); st.eosTokenIds = [3]
        XCTAssertEqual(sample(base, st).0, 4)  // 3 (EOS) and 7 (stop) suppressed
        st.outputTokenIds = [4, 4]
        XCTAssertEqual(sample(base, st).0, 3)
    }

    func testPenalties() {
        var p = SamplingParams.greedy; p.repetitionPenalty = 2
        let st = State(p); st.promptTokenIds = [3]
        XCTAssertEqual(sample(base, st).0, 7)  // 5/2 = 2.5 < 4.9
        var f = SamplingParams.greedy; f.frequencyPenalty = 0.3
        let sf = State(f); sf.outputTokenIds = [3, 3]
        XCTAssertEqual(sample(base, sf).0, 7)  // 5 - 0.6 = 4.4
        var pr = SamplingParams.greedy; pr.presencePenalty = 0.05
        let sp = State(pr); sp.outputTokenIds = [3, 3, 3]
        XCTAssertEqual(sample(base, sp).0, 3)  // 5 - 0.05 > 4.9
    }

    func testLogprobsAreRawAndTopNOrdered() {
        var p = SamplingParams.greedy; p.logprobs = 3; p.repetitionPenalty = 10
        let st = State(p); st.promptTokenIds = [3]
        let (token, lp) = sample(base, st)
        XCTAssertEqual(token, 7)
        let lse = log(base.map { exp(Double($0)) }.reduce(0, +))
        XCTAssertEqual(Double(lp!.logprob), 4.9 - lse, accuracy: 1e-5)
        XCTAssertEqual(lp!.top.map(\.tokenId), [3, 7, 4])
        XCTAssertEqual(Double(lp!.top[0].logprob), 5 - lse, accuracy: 1e-5)
    }

    /// More than 64 alternatives take the sorting path; it must give what the insertion path gives, ties included.
    func testManyTopLogprobsEqualTheInsertionOrder() {
        var rng = SystemRandomNumberGenerator()
        // Rounded to quarters, so equal values (ties) occur.
        let logits = (0..<1000).map { _ in Float(Int.random(in: -40...40, using: &rng)) / 4 }
        let s = Sampler(vocabSize: logits.count)
        logits.withUnsafeBufferPointer { x in
            let many = s.topLogprobs(x.baseAddress!, count: 300, lse: 1)
            let few = s.topLogprobs(x.baseAddress!, count: 64, lse: 1)
            XCTAssertEqual(many.count, 300)
            XCTAssertEqual(many.prefix(64).map(\.tokenId), few.map(\.tokenId))
            XCTAssertEqual(many.prefix(64).map(\.logprob), few.map(\.logprob))
            let expected = logits.indices.sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }.prefix(300)
            XCTAssertEqual(many.map(\.tokenId), Array(expected))
            XCTAssertEqual(s.topLogprobs(x.baseAddress!, count: 5000, lse: 0).count, 1000)
        }
    }

    func testMaxLogprobsBoundsLogprobsAndPromptLogprobs() throws {
        var p = SamplingParams.greedy; p.logprobs = 21
        XCTAssertThrowsError(try p.validate(vocabSize: 100))
        XCTAssertNoThrow(try p.validate(vocabSize: 100, maxLogprobs: 21))
        p.logprobs = nil; p.promptLogprobs = 6
        XCTAssertThrowsError(try p.validate(vocabSize: 100, maxLogprobs: 5)) { error in
            XCTAssertTrue("\(error)".contains("--max-logprobs"), "\(error)")
        }
        XCTAssertEqual(ModelLoadConfig(path: "m", maxLogprobs: -1).resolvedMaxLogprobs(vocabSize: 151_936), 151_936)
        XCTAssertThrowsError(try ModelLoadConfig(path: "m", maxLogprobs: -2).validate())
    }
}
