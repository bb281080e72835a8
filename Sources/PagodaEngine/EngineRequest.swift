/// A request as the engine core sees it: already tokenized, with its sampling parameters.
public struct EngineRequest: Sendable, Codable {
    public var requestId: String
    public var promptTokenIds: [Int]
    public var sampling: SamplingParams
    /// Token ids that end the request besides `sampling.stopTokenIds` (the model's EOS ids),
    /// unless `sampling.ignoreEOS`.
    public var eosTokenIds: [Int]
    /// Seconds since the epoch when the front-end received it (metrics, FCFS order).
    public var arrivalTime: Double
    /// The data-parallel rank the client pinned (vLLM's `data_parallel_rank`); nil: the front-end chooses.
    public var dataParallelRank: Int?
    /// `kv_transfer_params` (prefill/decode disaggregation), for the engine's KV connector.
    public var kvTransferParams: KVTransferParams?
    /// DP lock-step (a MoE model under expert parallelism): the wave the front-end sent it in (vLLM's
    /// `current_wave`); nil otherwise.
    public var wave: Int?

    public init(
        requestId: String, promptTokenIds: [Int], sampling: SamplingParams, eosTokenIds: [Int], arrivalTime: Double,
        dataParallelRank: Int? = nil, kvTransferParams: KVTransferParams? = nil
    ) {
        self.requestId = requestId
        self.promptTokenIds = promptTokenIds
        self.sampling = sampling
        self.eosTokenIds = eosTokenIds
        self.arrivalTime = arrivalTime
        self.dataParallelRank = dataParallelRank
        self.kvTransferParams = kvTransferParams
    }
}

/// Why a request ended (OpenAI's `finish_reason`; `abort` for client disconnects and stop strings).
public enum FinishReason: String, Sendable, Codable {
    case stop, length, abort, error
}

/// The logprob of one generated (or prompt) token and the top alternatives at its position.
public struct TokenLogprob: Sendable, Codable, Equatable {
    public var tokenId: Int
    public var logprob: Float
    /// (token id, logprob), best first; `sampling.logprobs` entries.
    public var top: [TopLogprob]
    /// 1-based rank of `tokenId` in the whole vocabulary (prompt logprobs only; vLLM's `Logprob.rank`).
    public var rank: Int?
    public init(tokenId: Int, logprob: Float, top: [TopLogprob], rank: Int? = nil) {
        self.tokenId = tokenId; self.logprob = logprob; self.top = top; self.rank = rank
    }
}

public struct TopLogprob: Sendable, Codable, Equatable {
    public var tokenId: Int
    public var logprob: Float
    public init(tokenId: Int, logprob: Float) { self.tokenId = tokenId; self.logprob = logprob }
}

/// What one engine step produced for one request: the new tokens since the last output.
public struct EngineOutput: Sendable, Codable {
    public var requestId: String
    public var newTokenIds: [Int]
    /// One entry per new token when `sampling.logprobs` was set.
    public var newLogprobs: [TokenLogprob]?
    /// With `sampling.promptLogprobs`, on the first output: prompt tokens 1..<P (the first has none).
    public var promptLogprobs: [TokenLogprob]?
    /// Set on the request's last output.
    public var finishReason: FinishReason?
    /// The token id that matched a stop condition (`stop_token_ids` / EOS), for vLLM's `stop_reason`.
    public var stopReason: Int?
    /// Prompt tokens served from the prefix cache (first output only).
    public var numCachedTokens: Int?
    /// Error message when finishReason == .error.
    public var error: String?
    /// With an error: the engine failed (a step, a lost peer), not the request; the server answers 500, not 400.
    public var engineFailed: Bool?
    /// The data-parallel rank that produced it, set by the data-parallel front-end (not sent over the engine RPC).
    public var dataParallelRank: Int?
    /// On the last output of a request a KV connector keeps blocks for: where a decode server reads them.
    public var kvTransferParams: KVTransferParams?

    public init(
        requestId: String, newTokenIds: [Int], newLogprobs: [TokenLogprob]? = nil, finishReason: FinishReason? = nil,
        stopReason: Int? = nil, numCachedTokens: Int? = nil, error: String? = nil
    ) {
        self.requestId = requestId; self.newTokenIds = newTokenIds; self.newLogprobs = newLogprobs
        self.finishReason = finishReason; self.stopReason = stopReason; self.numCachedTokens = numCachedTokens; self.error = error
    }
}

/// Load statistics an engine core publishes (for `/load`, `/metrics` and routers).
public struct SchedulerStats: Sendable, Codable, Equatable {
    public var numRunning: Int = 0
    public var numWaiting: Int = 0
    /// Fraction of KV blocks in use, 0...1.
    public var kvCacheUsage: Double = 0
    public var prefixCacheQueries: Int = 0
    public var prefixCacheHits: Int = 0
    public var numPreemptions: Int = 0
    /// Add-request messages the engine core has received (set by the RPC server): a front-end that counts
    /// what it sent knows exactly how many requests are in transit and not yet in `numWaiting`.
    public var numRequestsReceived: Int = 0
    /// The KV connector's counters (all zero without `--kv-transfer-config`).
    public var kvTransfer = KVTransferStats()
    /// Expert parallelism's counters (nil without `--enable-expert-parallel`).
    public var expertParallel: ExpertParallelEngineStats? = nil
    public init() {}
}
