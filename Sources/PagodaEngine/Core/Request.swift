/// Where a request stands in the scheduler (vLLM's `RequestStatus`). Progress inside `running` is
/// the counter `numComputedTokens`, not a phase: prefill and decode are the same state.
public enum RequestStatus: String, Sendable, Codable {
    case waiting, running, preempted
    /// Admitted with blocks, waiting for its prompt's KV to arrive from a KV connector (vLLM's
    /// `WAITING_FOR_REMOTE_KVS`); never in a step meanwhile.
    case waitingForRemoteKVs
    case finishedStopped, finishedLengthCapped, finishedAborted, finishedError

    public var isFinished: Bool {
        switch self {
        case .waiting, .running, .preempted, .waitingForRemoteKVs: return false
        default: return true
        }
    }
    var finishReason: FinishReason? {
        switch self {
        case .finishedStopped: return .stop
        case .finishedLengthCapped: return .length
        case .finishedAborted: return .abort
        case .finishedError: return .error
        default: return nil
        }
    }
}

/// The scheduler's record of one request: its tokens so far and how many of them are in the KV cache.
public final class Request {
    public let requestId: String
    public let promptTokenIds: [Int]
    public let sampling: SamplingParams
    public let eosTokenIds: [Int]
    public let arrivalTime: Double
    public internal(set) var status: RequestStatus = .waiting
    /// Prompt followed by the generated tokens.
    public internal(set) var allTokenIds: [Int]
    public internal(set) var outputTokenIds: [Int] = []
    /// Tokens whose K/V are in the cache (or being written by the step just scheduled).
    public internal(set) var numComputedTokens = 0
    /// Prompt tokens found in the prefix cache when first scheduled; -1 until then.
    public internal(set) var numCachedTokens = -1
    public internal(set) var numPreemptions = 0
    /// Hashes of the full blocks of `allTokenIds` computed so far (prefix caching).
    var blockHashes: [BlockHash] = []
    /// Tokens of `allTokenIds` the workers already have (the rest travel in the next SchedulerOutput).
    var numTokensSentToWorkers = 0
    /// The token that matched a stop condition.
    public internal(set) var stopReason: Int?
    /// Output tokens already reported in an `EngineOutput`.
    var numOutputTokensReported = 0
    /// Prompt logprobs received so far (prompt tokens 1..., `sampling.promptLogprobs` only), sent with the first output.
    var promptLogprobs: [TokenLogprob] = []
    /// `kv_transfer_params` of the request (prefill/decode disaggregation).
    public let kvTransferParams: KVTransferParams?
    /// Its KV load failed once: the prefill is computed here, never loaded again.
    var kvLoadFailed = false
    /// Why a connector declined to load the KV the params name (logged and counted as a recompute).
    var kvLoadRefusal: String?

    init(_ r: EngineRequest) {
        requestId = r.requestId
        promptTokenIds = r.promptTokenIds
        sampling = r.sampling
        eosTokenIds = r.eosTokenIds
        arrivalTime = r.arrivalTime
        kvTransferParams = r.kvTransferParams
        allTokenIds = r.promptTokenIds
        allTokenIds.reserveCapacity(r.promptTokenIds.count + r.sampling.maxTokens)
    }

    public var numTokens: Int { allTokenIds.count }
    public var numPromptTokens: Int { promptTokenIds.count }
    public var numOutputTokens: Int { outputTokenIds.count }

    /// Extends `blockHashes` over every full block of the known tokens.
    func updateBlockHashes(blockSize: Int) {
        let numFull = numTokens / blockSize
        while blockHashes.count < numFull {
            let i = blockHashes.count
            blockHashes.append(BlockHash(parent: blockHashes.last, tokenIds: allTokenIds[(i * blockSize)..<((i + 1) * blockSize)]))
        }
    }

    func appendOutputToken(_ t: Int) {
        outputTokenIds.append(t)
        allTokenIds.append(t)
    }
}
