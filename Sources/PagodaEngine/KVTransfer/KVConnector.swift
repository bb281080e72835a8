/// The scheduler half of a KV connector (vLLM v1's `KVConnectorBase_V1`, scheduler role): finds KV the
/// connector can supply for a new request, learns the blocks allocated for it, describes each step's
/// loads, saves and sends to the worker half, and decides whether a finished request's blocks wait for
/// a remote reader. Lives in the engine core; called on the engine thread only.
public protocol KVConnectorScheduler: AnyObject {
    /// Tokens after `numComputedTokens` (the local prefix hit) whose KV the connector can supply, and
    /// whether they arrive asynchronously (the request then waits in `waitingForRemoteKVs`).
    func getNumNewMatchedTokens(_ request: Request, numComputedTokens: Int) -> (numTokens: Int, loadAsync: Bool)
    /// Blocks were allocated for `request` (its whole block table) with `numExternalTokens` to load.
    func updateStateAfterAlloc(_ request: Request, blockIds: [Int], numExternalTokens: Int)
    /// The loads, saves and sends of the step just scheduled (`requests`: its scheduled requests, their
    /// `numComputedTokens` already advanced); clears the per-step state.
    func buildConnectorMeta(_ schedulerOutput: SchedulerOutput, requests: [Request]) -> KVConnectorMetadata
    /// `request` finished with `blockIds`: true delays freeing them until the worker reports them sent (or
    /// timed out); the params go back to the client in the response's `kv_transfer_params`.
    func requestFinished(_ request: Request, blockIds: [Int]) -> (delayFree: Bool, params: KVTransferParams?)
    /// The blocks a delayed free kept for `requestId` were freed (Pagoda's addition: the connector's
    /// count of held blocks follows it).
    func heldBlocksFreed(_ requestId: String)
}

extension KVConnectorScheduler {
    public func heldBlocksFreed(_ requestId: String) {}
}

/// The worker half of a KV connector (vLLM v1's `KVConnectorBase_V1`, worker role): moves KV between the
/// paged cache and the outside. The model runner calls, every step: `startLoadKV` before the forward pass,
/// `waitForLayerLoad(l)` before layer l, `saveKVLayer(l)` after it, `waitForSave()` at the end, then
/// `getFinished` for the transfers that ended since.
public protocol KVConnectorWorker: AnyObject {
    /// The cache the connector reads and writes (once, after the cache is allocated).
    func registerKVCaches(_ storage: KVBlockStorage) throws
    func startLoadKV(_ meta: KVConnectorMetadata) throws
    func waitForLayerLoad(_ layer: Int)
    func saveKVLayer(_ layer: Int, _ meta: KVConnectorMetadata) throws
    func waitForSave() throws
    /// Transfers that ended since the last call (requests finished sending, loads done or failed) and
    /// their statistics.
    func getFinished(_ finishedReqIds: [String]) -> KVConnectorOutput
    func shutdown()
}

/// Direct access to the paged KV cache of this process: per layer a K and a V array of
/// [numBlocks, blockSize, kvHeads, headDim] floats (`CausalLM` conforms).
public protocol KVBlockStorage: AnyObject {
    var kvNumLayers: Int { get }
    /// Floats in one block of one layer's K (the same for V): blockSize × kvHeads × headDim.
    var kvBlockFloats: Int { get }
    var kvNumBlocks: Int { get }
    /// Tokens per block; KV heads this process caches, the global index of the first, floats per head.
    var kvBlockSize: Int { get }
    var kvHeadsLocal: Int { get }
    var kvHeadStart: Int { get }
    var kvHeadDim: Int { get }
    /// The global KV heads tensor-parallel rank `tpRank` of `tpSize` caches for the same model (nil: the
    /// model cannot be split that way).
    func kvHeadRange(tpRank: Int, tpSize: Int) -> Range<Int>?
    /// The first float of `block` in layer `layer`'s K (`value` false) or V cache.
    func kvBlockPointer(layer: Int, block: Int, value: Bool) -> UnsafeMutablePointer<Float>
}

/// One step's connector work, from the scheduler half to the worker half (vLLM's `KVConnectorMetadata`).
public struct KVConnectorMetadata: Sendable, Codable, Equatable {
    public var loads: [KVLoadSpec] = []
    public var saves: [KVSaveSpec] = []
    /// Finished requests whose blocks wait for a remote reader.
    public var sends: [KVSendSpec] = []
    public init() {}
    public var isEmpty: Bool { loads.isEmpty && saves.isEmpty && sends.isEmpty }
}

/// Load KV into `blockIds` (local) from a producer's `remoteBlockIds` or from stored blocks.
public struct KVLoadSpec: Sendable, Codable, Equatable {
    public var reqId: String
    public var blockIds: [Int]
    public var source: Source
    public enum Source: Sendable, Codable, Equatable {
        /// A producer's blocks: its KV server of each tensor-parallel rank at `host:ports[rank]`.
        case remote(host: String, ports: [Int], requestId: String, blockIds: [Int])
        /// Stored blocks by hash value, in block order; `tokenIds` of each, checked against the file.
        case storage(hashes: [UInt64], tokenIds: [[Int32]])
    }
    public init(reqId: String, blockIds: [Int], source: Source) { self.reqId = reqId; self.blockIds = blockIds; self.source = source }
}

/// Store `blockIds` (full blocks) under their hashes.
public struct KVSaveSpec: Sendable, Codable, Equatable {
    public var reqId: String
    public var blockIds: [Int]
    public var hashes: [UInt64]
    public var tokenIds: [[Int32]]
    public init(reqId: String, blockIds: [Int], hashes: [UInt64], tokenIds: [[Int32]]) {
        self.reqId = reqId; self.blockIds = blockIds; self.hashes = hashes; self.tokenIds = tokenIds
    }
}

/// Serve `blockIds` of finished request `reqId` to one reader until `timeoutSeconds` pass.
public struct KVSendSpec: Sendable, Codable, Equatable {
    public var reqId: String
    public var blockIds: [Int]
    public var timeoutSeconds: Double
    public init(reqId: String, blockIds: [Int], timeoutSeconds: Double) {
        self.reqId = reqId; self.blockIds = blockIds; self.timeoutSeconds = timeoutSeconds
    }
}

/// What the worker half reports each step (vLLM's `KVConnectorOutput`).
public struct KVConnectorOutput: Sendable, Codable, Equatable {
    /// Requests whose held blocks may be freed now (read by their consumer, or their hold timed out).
    public var finishedSending: [String] = []
    /// Requests whose KV has arrived.
    public var finishedRecving: [String] = []
    /// Requests whose KV did not arrive, with the reason: they recompute their prefill.
    public var failedRecving: [String: String] = [:]
    /// Statistics of the transfers that ended.
    public var stats = KVTransferStats()
    public init() {}
    public var isEmpty: Bool { finishedSending.isEmpty && finishedRecving.isEmpty && failedRecving.isEmpty }
}

/// Counters of a connector, as the engine publishes them (totals since start, except the gauge).
public struct KVTransferStats: Sendable, Codable, Equatable {
    /// Loads completed (consumer) and their bytes and seconds.
    public var transfers = 0
    public var bytes = 0
    public var seconds = 0.0
    /// Loads that failed or were refused: their prefill was recomputed locally.
    public var recomputes = 0
    /// Reads served (producer) and their bytes.
    public var sends = 0
    public var sentBytes = 0
    /// Holds that expired before a reader came.
    public var sendTimeouts = 0
    /// Blocks held for remote readers right now (gauge).
    public var blocksHeldForRemote = 0
    /// Shared storage: tokens looked up and found beyond the local prefix cache; blocks stored.
    public var externalPrefixCacheQueries = 0
    public var externalPrefixCacheHits = 0
    public var savedBlocks = 0
    public init() {}

    /// Adds the counters of `o` (not the gauge).
    public mutating func add(_ o: KVTransferStats) {
        transfers += o.transfers; bytes += o.bytes; seconds += o.seconds; recomputes += o.recomputes
        sends += o.sends; sentBytes += o.sentBytes; sendTimeouts += o.sendTimeouts
        externalPrefixCacheQueries += o.externalPrefixCacheQueries; externalPrefixCacheHits += o.externalPrefixCacheHits
        savedBlocks += o.savedBlocks
    }
}
