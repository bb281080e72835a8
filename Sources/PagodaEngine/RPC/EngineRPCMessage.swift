/// What an engine core tells the front-end when it connects (after loading the model and sizing
/// the KV cache): enough for the front-end to validate requests and label its metrics.
public struct EngineHandshake: Sendable, Codable, Equatable {
    /// Must equal `EngineRPCProtocol.version` on both sides.
    public var protocolVersion: Int
    /// Model folder the engine loaded (as that node names it: paths may differ between nodes).
    public var model: String
    /// What the engine serves, independent of where it lies: `ModelFingerprint` of the model's config and
    /// vocabulary. Ranks joining one deployment must agree on it.
    public var modelIdentity: String
    public var numBlocks: Int
    public var blockSize: Int
    public var maxModelLen: Int
    public var vocabSize: Int
    /// `--max-logprobs`, resolved (never -1): the front-end's check of a request's logprobs. Optional only so
    /// that the hello of an older engine core still decodes and is refused by its version, not as malformed.
    public var maxLogprobs: Int?
    public var eosTokenIds: [Int]
    public var dataParallelRank: Int
    public var dataParallelSize: Int
    /// The engine core's process id (for logs and for the supervisor).
    public var pid: Int
    /// The address the front-end reaches this engine at (its end of the RPC connection, e.g. `10.99.48.2`);
    /// empty for a local engine on a unix socket.
    public var address: String

    public init(
        protocolVersion: Int = EngineRPCProtocol.version, model: String, numBlocks: Int, blockSize: Int,
        maxModelLen: Int, vocabSize: Int, eosTokenIds: [Int], dataParallelRank: Int = 0,
        dataParallelSize: Int = 1, pid: Int, modelIdentity: String? = nil, address: String = "",
        maxLogprobs: Int? = SamplingParams.maxLogprobs
    ) {
        self.protocolVersion = protocolVersion; self.model = model; self.numBlocks = numBlocks; self.blockSize = blockSize
        self.maxModelLen = maxModelLen; self.vocabSize = vocabSize; self.maxLogprobs = maxLogprobs; self.eosTokenIds = eosTokenIds
        self.dataParallelRank = dataParallelRank; self.dataParallelSize = dataParallelSize; self.pid = pid
        self.modelIdentity = modelIdentity ?? model; self.address = address
    }
}

public enum EngineRPCProtocol {
    /// Bumped whenever a message changes shape (v4: model identity and address in the hello; heartbeats;
    /// v5: prompt logprobs and kv_transfer_params in the outputs, kv_transfer_params in add-request; v6: max logprobs
    /// in the hello).
    public static let version = 6
}

/// A request-response call for anything that is not on the request path (vLLM's "utility"
/// calls: reset the prefix cache, read the stats, ...). `callId` pairs the result with the call.
public struct EngineUtilityCall: Sendable, Codable, Equatable {
    public var callId: UInt64
    public var method: String
    public var arguments: [String]
    public init(callId: UInt64, method: String, arguments: [String] = []) {
        self.callId = callId; self.method = method; self.arguments = arguments
    }
}

public struct EngineUtilityResult: Sendable, Codable, Equatable {
    public var callId: UInt64
    public var result: String?
    public var error: String?
    public init(callId: UInt64, result: String?, error: String?) { self.callId = callId; self.result = result; self.error = error }
}

/// Every message of the engine RPC. Direction in brackets: [E→F] engine core to front-end,
/// [F→E] front-end to engine core.
public enum EngineRPCMessage: Sendable {
    /// [E→F] first message after connecting.
    case hello(EngineHandshake)
    /// [F→E] the front-end accepts the handshake; requests may follow.
    case helloAck
    /// [F→E]
    case addRequest(EngineRequest)
    /// [F→E] request ids to abort (client gone, stop string matched).
    case abort([String])
    /// [E→F] what one engine step produced.
    case outputs([EngineOutput])
    /// [E→F] scheduler statistics, sent when they change.
    case stats(SchedulerStats)
    /// [F→E]
    case utility(EngineUtilityCall)
    /// [E→F]
    case utilityResult(EngineUtilityResult)
    /// [F→E] finish and exit; [E→F] never sent.
    case shutdown
    /// Either way: the sender gives up (handshake refused, fatal engine error); the text says why.
    case failure(String)
    /// [E→F] changes to the engine's prefix-cache index since the previous `kvEvents`, sent right after
    /// the statistics they belong to (the data-parallel front-end routes by them).
    case kvEvents(KVCacheEvents)
    /// Either way, on a connection with a liveness timeout: "still here" when nothing else was sent for a
    /// while, so that a peer behind a cut network is noticed (`EngineRPCLiveness`).
    case heartbeat
}

/// How a connection between hosts notices a peer that went silent (a cut network sends no FIN): each side
/// sends a heartbeat every `interval` seconds, and a side that receives nothing for `timeout` seconds
/// closes the connection as lost.
public struct EngineRPCLiveness: Sendable, Equatable, Codable {
    public var timeout: Double
    public var interval: Double { max(0.05, timeout / 5) }
    public init(timeout: Double) { self.timeout = timeout }
}
