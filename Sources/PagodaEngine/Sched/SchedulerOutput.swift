import PagodaModel

/// One step's instructions from the scheduler to the workers (vLLM's `SchedulerOutput`). Self-contained
/// and Codable: the multiprocess executor sends it to worker processes as it is.
///
/// Workers keep a state per request. A request they do not know (or that was preempted and resumes)
/// comes in full in `scheduledNewReqs`; a request they know comes as a diff in `scheduledCachedReqs`
/// (new tokens, new blocks). The batch order is `scheduledNewReqs` then `scheduledCachedReqs`.
public struct SchedulerOutput: Sendable, Codable, Equatable {
    public var scheduledNewReqs: [NewRequestData]
    public var scheduledCachedReqs: CachedRequestData
    /// Tokens to compute this step, per scheduled request id.
    public var numScheduledTokens: [String: Int]
    public var totalNumScheduledTokens: Int
    /// Requests that ended since the last step: workers drop their state.
    public var finishedReqIds: [String]
    /// Requests preempted this step: workers drop their state (they come back as new requests).
    public var preemptedReqIds: [String]
    /// The KV connector's loads, saves and sends for this step (nil without a connector or work).
    public var kvConnectorMetadata: KVConnectorMetadata?
    /// Expert parallelism in a DP wave: this engine has no tokens this step, but its model must still take
    /// part in every MoE layer's all-to-all (vLLM's dummy batch).
    public var expertParallelIdle = false

    public init(
        scheduledNewReqs: [NewRequestData] = [], scheduledCachedReqs: CachedRequestData = CachedRequestData(),
        numScheduledTokens: [String: Int] = [:], totalNumScheduledTokens: Int = 0,
        finishedReqIds: [String] = [], preemptedReqIds: [String] = []
    ) {
        self.scheduledNewReqs = scheduledNewReqs; self.scheduledCachedReqs = scheduledCachedReqs
        self.numScheduledTokens = numScheduledTokens; self.totalNumScheduledTokens = totalNumScheduledTokens
        self.finishedReqIds = finishedReqIds; self.preemptedReqIds = preemptedReqIds
    }

    public var isEmpty: Bool { totalNumScheduledTokens == 0 }
    /// True when the step carries nothing for the workers at all (no tokens, no connector work).
    public var hasNoWork: Bool { isEmpty && (kvConnectorMetadata?.isEmpty ?? true) }
    public var numScheduledRequests: Int { scheduledNewReqs.count + scheduledCachedReqs.reqIds.count }
}

/// A request the workers see for the first time (or again after preemption), in full.
public struct NewRequestData: Sendable, Codable, Equatable {
    public var reqId: String
    public var promptTokenIds: [Int]
    /// Tokens generated before a preemption (empty for a fresh request).
    public var outputTokenIds: [Int]
    public var sampling: SamplingParams
    /// Ids that end the request besides `sampling.stopTokenIds` (min-tokens suppresses them).
    public var eosTokenIds: [Int]
    /// The whole block table.
    public var blockIds: [Int]
    /// Tokens already in the KV cache (prefix-cache hit) before this step's tokens.
    public var numComputedTokens: Int

    public init(
        reqId: String, promptTokenIds: [Int], outputTokenIds: [Int], sampling: SamplingParams, eosTokenIds: [Int],
        blockIds: [Int], numComputedTokens: Int
    ) {
        self.reqId = reqId; self.promptTokenIds = promptTokenIds; self.outputTokenIds = outputTokenIds
        self.sampling = sampling; self.eosTokenIds = eosTokenIds; self.blockIds = blockIds; self.numComputedTokens = numComputedTokens
    }
}

/// Requests the workers already know, as parallel arrays of diffs (vLLM's `CachedRequestData`).
public struct CachedRequestData: Sendable, Codable, Equatable {
    public var reqIds: [String] = []
    /// Token ids appended to each request since the workers last saw it (its sampled tokens).
    public var newTokenIds: [[Int]] = []
    /// Blocks appended to each request's block table this step.
    public var newBlockIds: [[Int]] = []
    /// Tokens in the KV cache before this step's tokens.
    public var numComputedTokens: [Int] = []
    public init() {}

    mutating func append(reqId: String, newTokenIds: [Int], newBlockIds: [Int], numComputedTokens: Int) {
        reqIds.append(reqId); self.newTokenIds.append(newTokenIds); self.newBlockIds.append(newBlockIds)
        self.numComputedTokens.append(numComputedTokens)
    }
}

/// What the workers return for one step (vLLM's `ModelRunnerOutput`): one sampled token for every
/// request whose scheduled tokens reached the end of its sequence (a partial prefill chunk samples none).
public struct ModelRunnerOutput: Sendable, Codable, Equatable {
    public var reqIds: [String]
    public var sampledTokenIds: [Int]
    /// Per sampled token when its request asked for logprobs, else nil.
    public var logprobs: [TokenLogprob?]
    /// Prompt logprobs computed this step, for requests that asked (`sampling.promptLogprobs`); empty for others.
    public var promptLogprobs: [PromptLogprobsChunk]
    /// The KV connector's report of transfers that ended (nil without a connector).
    public var kvConnectorOutput: KVConnectorOutput?
    /// Expert parallelism: counters and the expert-load report, on the steps that made a new report.
    public var expertParallel: ExpertParallelStats?

    public init(
        reqIds: [String] = [], sampledTokenIds: [Int] = [], logprobs: [TokenLogprob?] = [],
        promptLogprobs: [PromptLogprobsChunk] = []
    ) {
        self.reqIds = reqIds; self.sampledTokenIds = sampledTokenIds; self.logprobs = logprobs
        self.promptLogprobs = promptLogprobs
    }
    public static let empty = ModelRunnerOutput()
}
