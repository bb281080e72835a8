import PagodaStructured

/// A worker's persistent record of one request, built from `NewRequestData` and updated by the
/// diffs of `CachedRequestData` (vLLM's `CachedRequestState`).
public final class CachedRequestState: SamplingState {
    public let reqId: String
    public let promptTokenIds: [Int]
    public private(set) var outputTokenIds: [Int]
    /// Prompt + output, the token at each position.
    public private(set) var tokenIds: [Int]
    public let sampling: SamplingParams
    public let eosTokenIds: [Int]
    /// Block table, as the ForwardBatch wants it.
    public private(set) var blockIds: [Int32]
    public var numComputedTokens: Int
    public var generator: SamplingRNG
    /// The request's place in its output grammar (structured outputs only).
    public var grammarMatcher: GrammarMatcher?

    init(_ d: NewRequestData, defaultGenerator: inout SamplingRNG) {
        reqId = d.reqId
        promptTokenIds = d.promptTokenIds
        outputTokenIds = d.outputTokenIds
        outputTokenIds.reserveCapacity(d.sampling.maxTokens)
        tokenIds = d.promptTokenIds + d.outputTokenIds
        tokenIds.reserveCapacity(d.promptTokenIds.count + d.sampling.maxTokens)
        sampling = d.sampling
        eosTokenIds = d.eosTokenIds
        blockIds = d.blockIds.map { Int32($0) }
        numComputedTokens = d.numComputedTokens
        if let seed = d.sampling.seed {
            generator = SamplingRNG(seed: seed)
            generator.advance(by: d.outputTokenIds.count)  // one draw per token sampled before a preemption
        } else {
            generator = SamplingRNG(seed: defaultGenerator.next())
        }
    }

    func append(newTokenIds: [Int], newBlockIds: [Int], numComputedTokens: Int) {
        outputTokenIds.append(contentsOf: newTokenIds)
        tokenIds.append(contentsOf: newTokenIds)
        for b in newBlockIds { blockIds.append(Int32(b)) }
        self.numComputedTokens = numComputedTokens
    }
}
