import Collections
import Foundation
import Logging
import PagodaDistributed

/// The engine: a scheduler with its KV cache manager and an executor, advanced one step at a time
/// (vLLM's `EngineCore`). Not thread-safe: one thread drives it (`EngineCoreThread` or a loop).
///
/// With an executor that keeps several batches in flight (pipeline parallelism: P stages), `step()` is
/// vLLM's `step_with_batch_queue`: it schedules and submits new batches while there is room in the
/// queue and something to schedule, then waits for the oldest batch and returns its outputs. Each batch holds at most ⌈unfinished requests / P⌉ requests, so the running
/// requests are split into P micro-batches and every stage has one to work on.
public final class EngineCore {
    /// The configuration with `maxModelLen` and `maxLogprobs` resolved.
    public let config: EngineConfig
    public let modelInfo: ModelInfo
    public let maxModelLen: Int
    /// `--max-logprobs` with -1 resolved to the vocabulary size.
    public let maxLogprobs: Int
    public let numBlocks: Int
    public let scheduler: Scheduler
    public let executor: Executor
    private let logger = Logger(label: "pagoda.engine")
    /// Batches submitted to the executor whose outputs are not applied yet, oldest first.
    private var batchQueue = Deque<(future: ModelRunnerFuture, schedulerOutput: SchedulerOutput)>()
    /// `executor.maxConcurrentBatches`: 1 runs one step at a time.
    public let maxConcurrentBatches: Int
    /// The most batches that were in flight at once.
    public private(set) var peakBatchesInFlight = 0
    /// The KV connector's worker half (`--kv-transfer-config`), if it runs in this process.
    private var kvConnectorWorker: KVConnectorWorker?
    /// True with a KV connector (its worker half here or in the executor's workers).
    private var hasKVConnector: Bool { scheduler.connector != nil }
    /// Expert parallelism's counters (nil without it); see `EngineCore+DataParallelWave.swift`.
    var expertParallelStats: ExpertParallelEngineStats?
    /// DP lock-step (a MoE model under expert parallelism with DP > 1): the engine cores' group for the
    /// wave's all-ranks check, and the numbered waves' state.
    let dataParallelControl: Communicator?
    public internal(set) var wave = DataParallelWaveState()
    /// Wave steps between two all-ranks checks (vLLM checks every 32 steps).
    public var waveCheckInterval = 8
    let epLogger = Logger(label: "pagoda.expert-parallel")

    /// Loads the model through the executor the config names and sizes the KV cache.
    public convenience init(config: EngineConfig) throws {
        try config.validate()
        try self.init(config: config, executor: ExecutorFactory.make(config))
    }

    /// Uses an executor that already holds the model.
    public init(config: EngineConfig, executor: Executor) throws {
        try config.validate()
        let info = executor.modelInfo
        let maxModelLen = config.model.maxModelLen ?? info.maxPositionEmbeddings
        if maxModelLen > info.maxPositionEmbeddings {
            throw EngineConfigError.invalid(
                "--max-model-len", "\(maxModelLen) exceeds the model's max_position_embeddings \(info.maxPositionEmbeddings)")
        }
        let bs = config.cache.blockSize
        let blocksPerSeq = (maxModelLen + bs - 1) / bs
        var numBlocks = try executor.determineNumAvailableBlocks(config.cache)
        if config.cache.kvCacheMemoryBytes == nil && config.cache.numBlocksOverride == nil {
            // A default or a share of memory: never more than max-num-seqs requests at max-model-len can use.
            numBlocks = min(numBlocks, blocksPerSeq * config.scheduler.maxNumSeqs)
        }
        if numBlocks < blocksPerSeq {
            throw EngineError.insufficientMemory(
                "the KV cache holds \(numBlocks) blocks (\(numBlocks * bs) tokens), less than one request of "
                    + "--max-model-len \(maxModelLen) needs; raise --kv-cache-memory-bytes or lower --max-model-len")
        }
        try executor.initializeCache(numBlocks: numBlocks)
        var resolved = config
        resolved.model.maxModelLen = maxModelLen
        resolved.model.maxLogprobs = config.model.resolvedMaxLogprobs(vocabSize: info.vocabSize)
        self.config = resolved
        self.modelInfo = info
        self.maxModelLen = maxModelLen
        self.maxLogprobs = resolved.model.maxLogprobs
        self.numBlocks = numBlocks
        self.executor = executor
        let kv = KVCacheManager(numBlocks: numBlocks, blockSize: bs, enableCaching: config.cache.enablePrefixCaching)
        scheduler = Scheduler(config: config.scheduler, maxModelLen: maxModelLen, kvCacheManager: kv)
        maxConcurrentBatches = max(1, executor.maxConcurrentBatches)
        scheduler.maxConcurrentBatches = maxConcurrentBatches
        if config.parallel.enableExpertParallel {
            var st = ExpertParallelEngineStats()
            let tp = config.parallel.tensorParallelSize, dp = config.parallel.dataParallelRank
            st.expertRanks = Array((dp * tp)..<((dp + 1) * tp))
            expertParallelStats = st
        }
        if config.parallel.dataParallelLockStep, let address = config.parallel.dataParallelControlAddress {
            let p = config.parallel
            dataParallelControl = try GroupCommunicator.connect(
                CommunicatorAddress(parsing: address), group: ProcessGroup(name: "data-parallel", ranks: Array(0..<p.dataParallelSize)),
                // The server hands every engine of a deployment the same secret; without one (an engine made
                // in-process with a shared-memory group) the secret is never asked for.
                rank: p.dataParallelRank, secret: config.internalSecret ?? .random(), timeout: p.communicatorTimeoutSeconds)
        } else {
            dataParallelControl = nil
        }
        if let kvTransfer = config.kvTransfer {
            kvConnectorWorker = try KVConnectorFactory.install(
                kvTransfer, config: resolved, executor: executor, scheduler: scheduler,
                bytesPerBlock: info.kvCacheBytesPerBlock)
        }
        let mib = Double(numBlocks * info.kvCacheBytesPerBlock) / Double(1 << 20)
        logger.info("# CPU blocks: \(numBlocks) (\(String(format: "%.1f", mib)) MiB of KV cache, \(bs) tokens per block)")
        let concurrency = Double(numBlocks * bs) / Double(maxModelLen)
        logger.info("Maximum concurrency for \(maxModelLen) tokens per request: \(String(format: "%.2f", concurrency))x")
    }

    /// Checks a request against the model and the limits; pure, so any thread may call it.
    public func validate(_ r: EngineRequest) throws {
        try RequestValidator.validate(r, vocabSize: modelInfo.vocabSize, maxModelLen: maxModelLen, maxLogprobs: maxLogprobs)
    }

    /// Queues a request; throws if it is invalid (nothing is queued then).
    public func addRequest(_ r: EngineRequest) throws {
        try validate(r)
        if scheduler.holdsRequestId(r.requestId) { throw EngineError.duplicateRequestId(r.requestId) }
        // No request can outgrow the context: a larger max_tokens (say Int.max from the library API) ends
        // at the same place, and bounding it keeps every buffer sized by it (token lists, worker states) finite.
        var bounded = r
        bounded.sampling.maxTokens = min(r.sampling.maxTokens, maxModelLen - r.promptTokenIds.count)
        bounded.sampling.minTokens = min(r.sampling.minTokens, bounded.sampling.maxTokens)
        scheduler.addRequest(bounded)
    }

    /// Ends requests and frees their blocks; they produce no further output. Unknown ids are ignored.
    public func abortRequests(_ ids: [String]) {
        scheduler.finishRequests(ids, status: .finishedAborted)
        try? flushFinishedIfIdle()
    }

    /// One engine step: schedule → execute → update. Returns the new tokens (and finishes) of this step.
    public func step() throws -> [EngineOutput] {
        if maxConcurrentBatches > 1 || !batchQueue.isEmpty { return try stepWithBatchQueue() }
        guard hasUnfinishedRequests else { return [] }
        let schedulerOutput = scheduler.schedule()
        // With a KV connector every step reaches the worker: it reports the transfers that ended.
        let needsWorker = !schedulerOutput.isEmpty || hasKVConnector
        let runnerOutput = needsWorker ? try executor.executeModel(schedulerOutput) : .empty
        noteExpertParallel(runnerOutput)
        let outputs = scheduler.updateFromOutput(runnerOutput)
        try flushFinishedIfIdle()
        if schedulerOutput.isEmpty && outputs.isEmpty && hasKVConnector {
            usleep(1000)  // only transfers in flight: poll their end without spinning a core
        }
        return outputs
    }

    /// Records a step's expert-parallel report (and logs the imbalance line).
    func noteExpertParallel(_ o: ModelRunnerOutput) {
        guard let report = o.expertParallel, expertParallelStats != nil else { return }
        expertParallelStats!.model = report
        logExpertLoad(report)
    }

    /// vLLM's `step_with_batch_queue`: fill the queue while there is room and something to schedule,
    /// then wait for the oldest batch and apply its outputs (so each call returns one batch's outputs).
    private func stepWithBatchQueue() throws -> [EngineOutput] {
        while batchQueue.count < maxConcurrentBatches && scheduler.hasUnfinishedRequests {
            let n = scheduler.numUnfinishedRequests
            let perBatch = max(1, (n + maxConcurrentBatches - 1) / maxConcurrentBatches)
            let s = scheduler.schedule(maxNumRequests: perBatch)
            // An empty batch still tells the workers about finished and preempted requests.
            guard !s.isEmpty || !s.finishedReqIds.isEmpty || !s.preemptedReqIds.isEmpty else { break }
            batchQueue.append((try executor.submitModel(s), s))
            peakBatchesInFlight = max(peakBatchesInFlight, batchQueue.count)
            if s.isEmpty { break }  // every request is in flight
        }
        guard let (future, s) = batchQueue.popFirst() else { return [] }
        let outputs = scheduler.updateFromOutput(s, try future.result())
        try flushFinishedIfIdle()
        return outputs
    }

    /// When the last requests have just finished, tells the workers right away (an empty step), so
    /// that no request state outlives its request while the engine is idle.
    /// Batches still in flight then carry no live request: they are collected first.
    func flushFinishedIfIdle() throws {
        guard !scheduler.hasUnfinishedRequests else { return }
        while let (f, s) = batchQueue.popFirst() { _ = scheduler.updateFromOutput(s, try f.result()) }
        guard scheduler.hasFinishedRequestsToReport else { return }
        // The connector's report of this step (held blocks read, loads ended) is applied, not dropped.
        _ = scheduler.updateFromOutput(try executor.executeModel(scheduler.schedule()))
    }

    /// Ends every unfinished request with `finishReason == .error` (after a failed step).
    public func failAllRequests(_ message: String) -> [EngineOutput] {
        let ids = scheduler.unfinishedRequestIds
        scheduler.finishRequests(ids, status: .finishedError)
        return ids.map {
            var out = EngineOutput(requestId: $0, newTokenIds: [], finishReason: .error, error: message)
            out.engineFailed = true
            return out
        }
    }

    /// Requests still running, or KV transfers whose end the engine must still see.
    public var hasUnfinishedRequests: Bool { scheduler.hasUnfinishedRequests || scheduler.hasKVTransfersInFlight }
    public var stats: SchedulerStats {
        var s = scheduler.makeStats()
        s.expertParallel = expertParallelStats
        return s
    }
    /// Whether the prefix-cache index records its changes for `takeKVEvents()` (off by default: nobody
    /// would drain them in the offline API).
    public var recordsKVEvents: Bool {
        get { scheduler.kvCacheManager.blockPool.recordsEvents }
        set { scheduler.kvCacheManager.blockPool.recordsEvents = newValue }
    }
    /// The prefix-cache changes since the last call (see `KVCacheEvents`).
    public func takeKVEvents() -> KVCacheEvents { scheduler.kvCacheManager.blockPool.takeEvents() }
    /// True when no request holds a KV block (tests: "the block pool is whole again").
    public var kvCacheIsWhole: Bool { scheduler.kvCacheManager.isWhole }

    /// Batches submitted whose outputs are not applied yet.
    public var numBatchesInFlight: Int { batchQueue.count }

    public func shutdown() {
        batchQueue.removeAll()
        kvConnectorWorker?.shutdown()
        executor.shutdown()
    }
}
