import Foundation
import PagodaEngine

/// Random prompts of token ids for the offline benchmarks (vLLM's "random" dataset without text):
/// uniform ids in `[low, vocabSize)`, reproducible from `seed`. Each call gives new prompts, so a
/// benchmark never measures prefix-cache hits it did not ask for.
public struct OfflinePromptMaker {
    private var rng: SamplingRNG
    public let vocabSize: Int
    /// The lowest id drawn (skips the first ids, where tokenizers keep special tokens).
    public let low: Int

    public init(vocabSize: Int, seed: UInt64) {
        self.vocabSize = vocabSize
        low = vocabSize > 1000 ? 100 : min(2, vocabSize - 1)
        rng = SamplingRNG(seed: seed)
    }

    public mutating func prompts(count: Int, length: Int) -> [[Int]] {
        (0..<count).map { _ in (0..<length).map { _ in low + Int(rng.next() % UInt64(vocabSize - low)) } }
    }
}

/// Sampling for benchmark requests: exactly `outputLen` tokens (EOS ignored), greedy or vLLM's default
/// temperature 1.
public func offlineBenchSampling(outputLen: Int, greedy: Bool) -> SamplingParams {
    var p = SamplingParams()
    p.temperature = greedy ? 0 : 1
    p.maxTokens = outputLen
    p.minTokens = outputLen
    p.ignoreEOS = true
    return p
}

/// Percentiles of a sample (linear interpolation, as numpy's default).
public func percentile(_ xs: [Double], _ p: Double) -> Double {
    guard !xs.isEmpty else { return 0 }
    let s = xs.sorted()
    let pos = p / 100 * Double(s.count - 1)
    let lo = Int(pos.rounded(.down)), hi = min(lo + 1, s.count - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - Double(lo))
}
