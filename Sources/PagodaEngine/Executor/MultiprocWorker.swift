import CPagodaSystem
import Foundation
import PagodaDistributed
import PagodaModel

#if canImport(Glibc)
import Glibc
#endif

/// The worker-process side of `MultiprocExecutor` (vLLM's `WorkerProc`), entered by `pagoda worker`.
///
/// Connects to the engine's control socket (Unix, or TCP with the secret proved first), joins its tensor group and pipeline group, loads its shard
/// through the `StageLoader` it was given (`.causalLM` in `pagoda worker`), then serves requests until `.shutdown` or until the engine's
/// socket closes. Any error is reported (`.failed`, naming the peer to blame when a peer died) and the
/// process exits with status 1.
public enum MultiprocWorker {
    /// What a worker needs to build its stage of the model.
    public struct StageSpec {
        public let model: ModelLoadConfig
        public let tpRank: Int, tpSize: Int, ppRank: Int, ppSize: Int
        /// Layers per pipeline stage (`ParallelConfig.pipelineLayerPartition`); nil: an even split.
        public let layerPartition: [Int]?
        /// The engine's CPUs, shared among its workers (`ParallelConfig.engineCPUs`); nil: every allowed CPU.
        public let engineCPUs: [Int]?
        /// The tensor-parallel group (errors name global worker ranks).
        public let tensorGroup: Communicator
        /// The expert-parallel group (`--enable-expert-parallel`), else nil.
        public var expertGroup: Communicator? = nil
        /// Expert-parallel steps between expert-load reports.
        public var expertLoadReportInterval = 100
    }

    /// A loaded stage: the model (one shard, this stage's layers) and the width of the hidden state that
    /// pipeline stages pass on (`hiddenSize`; hidden + residual is [2, N, hiddenSize]).
    public struct LoadedStage {
        public let model: RunnableModel
        public let hiddenSize: Int
        public init(model: RunnableModel, hiddenSize: Int) { self.model = model; self.hiddenSize = hiddenSize }
    }

    /// Builds a worker's stage of the model from its spec (`.causalLM`: a `CausalLM` shard from the model folder).
    public struct StageLoader: Sendable {
        public let load: @Sendable (StageSpec) throws -> LoadedStage
        public init(_ load: @escaping @Sendable (StageSpec) throws -> LoadedStage) { self.load = load }
    }

    /// Serves the engine at `engine` (`unix:` its socket; `tcp://` its control listener, proving `secret`,
    /// bounded by `connectTimeout` seconds) as worker `rank` of the engine `engineId`, building its stage with
    /// `loader`. Returns after a clean shutdown; exits the process (status 1) after an error, which it first
    /// reports to the engine.
    public static func run(
        engine: EngineRPCAddress, engineId: String, secret: PeerSecret?, rank: Int, parentPid: Int32?, connectTimeout: Double = 60,
        loader: StageLoader = .causalLM
    ) {
        setvbuf(stdout, nil, _IOLBF, 0)
        if let parentPid, pagoda_set_parent_death_signal(SIGKILL, parentPid) != 0 {
            exit(0)  // the engine is already gone
        }
        let channel: MultiprocChannel
        do {
            switch engine {
            case .unix(let path):
                channel = MultiprocChannel(fd: try MultiprocUnixSocket.connect(path: path))
            case .tcp:
                guard let secret else { throw MultiprocExecutorError.startFailed("a TCP control channel needs the secret") }
                channel = try MultiprocTCPControl.connect(engine, secret: secret, timeout: connectTimeout)
            }
            try channel.send(MultiprocHello(rank: rank, pid: getpid(), engineId: engineId))
        } catch {
            fputs("pagoda worker rank \(rank): cannot reach the engine at \(engine): \(error)\n", stderr)
            exit(1)
        }
        do {
            try serve(channel: channel, rank: rank, engineId: engineId, loader: loader)
        } catch is MultiprocChannel.Closed {
            exit(0)  // the engine went away: nothing to report to
        } catch {
            var blamed: Int? = nil
            if case .peerDied(let r, _)? = error as? CommunicatorError { blamed = r }
            if case .timeout(let r, _, _)? = error as? CommunicatorError { blamed = r }
            try? channel.send(MultiprocReply.failed(message: "\(error)", blamedRank: blamed))
            fputs("pagoda worker rank \(rank): \(error)\n", stderr)
            exit(1)
        }
    }

    private static func serve(channel: MultiprocChannel, rank: Int, engineId: String, loader: StageLoader) throws {
        guard case .initialize(let setup) = try channel.receive(MultiprocRequest.self) else {
            throw MultiprocExecutorError.startFailed("rank \(rank): first message was not initialize")
        }
        guard setup.engineId == engineId else {
            throw MultiprocExecutorError.startFailed("rank \(rank): the engine is \(setup.engineId), not \(engineId) (--engine-id)")
        }
        let config = setup.config
        let layout = ParallelLayout(
            tensorParallelSize: config.parallel.tensorParallelSize,
            pipelineParallelSize: config.parallel.pipelineParallelSize)
        let tpRank = layout.tpRank(ofWorker: rank), ppRank = layout.ppRank(ofWorker: rank)
        // Every worker joins its TP group first, then its PP group: no cycle of waits.
        let tpGroup = try GroupCommunicator.connect(
            CommunicatorAddress(parsing: setup.tensorGroupAddress), group: layout.tensorGroup(ppRank: ppRank), rank: rank,
            secret: setup.secret, timeout: config.parallel.communicatorTimeoutSeconds)
        let ppGroup = try GroupCommunicator.connect(
            CommunicatorAddress(parsing: setup.pipelineGroupAddress), group: layout.pipelineGroup(tpRank: tpRank), rank: rank,
            secret: setup.secret, timeout: config.parallel.communicatorTimeoutSeconds)
        // Then the expert-parallel group, which spans every data-parallel engine's workers.
        let epGroup = try ExpertParallelGroup.connect(config.parallel, tpRank: tpRank, tensorGroup: tpGroup, secret: setup.secret)
        var spec = StageSpec(
            model: config.model, tpRank: tpRank, tpSize: layout.tensorParallelSize, ppRank: ppRank,
            ppSize: layout.pipelineParallelSize, layerPartition: config.parallel.pipelineLayerPartition,
            engineCPUs: config.parallel.engineCPUs, tensorGroup: tpGroup)
        spec.expertGroup = epGroup
        spec.expertLoadReportInterval = config.parallel.expertLoadReportInterval
        let stage = try loader.load(spec)
        let isDriver = rank == layout.driverRank
        let model = PipelineStageModel(
            stage.model, hiddenSize: stage.hiddenSize, pipelineGroup: ppGroup,
            producesLogits: isDriver, maxTokens: config.scheduler.maxNumBatchedTokens)
        let runner = ModelRunner(
            model: model, blockSize: config.cache.blockSize, scheduler: config.scheduler, seed: config.seed,
            tokenizerPath: config.model.path)
        // The KV connector's worker half of this rank (`--kv-transfer-config`): a producer's rank serves its
        // heads of held blocks on its own port, announced in the ready reply.
        let kvConnector = try config.kvTransfer.map {
            try KVConnectorFactory.makeTCPWorker($0, tpRank: tpRank, tpSize: layout.tensorParallelSize, secret: setup.secret)
        }
        defer { kvConnector?.shutdown() }
        try channel.send(
            MultiprocReply.ready(
                ModelInfo(
                    vocabSize: model.vocabSize, eosTokenIds: model.eosTokenIds, maxPositionEmbeddings: model.maxPositionEmbeddings,
                    kvCacheBytesPerBlock: model.kvCacheBytesPerBlock(blockSize: config.cache.blockSize),
                    kvServerPorts: kvConnector?.server.map { [$0.port] } ?? [])))
        while true {
            switch try channel.receive(MultiprocRequest.self) {
            case .initialize:
                throw MultiprocExecutorError.startFailed("rank \(rank): initialize sent twice")
            case .initializeCache(let numBlocks):
                try model.allocateKVCache(numBlocks: numBlocks, blockSize: config.cache.blockSize)
                if let kvConnector {
                    guard let storage = stage.model as? KVBlockStorage else {
                        throw MultiprocExecutorError.startFailed("rank \(rank): the KV connector needs a model with a paged KV cache")
                    }
                    try kvConnector.registerKVCaches(storage)
                    runner.kvConnector = kvConnector
                }
                try channel.send(MultiprocReply.ok)
            case .execute(let s):
                if isDriver {
                    try channel.send(MultiprocReply.output(try runner.execute(s)))
                } else {
                    let out = try runner.execute(withoutSampling(s))
                    if kvConnector != nil {  // every rank reports its transfers (`KVOutputAggregator`)
                        var report = ModelRunnerOutput.empty
                        report.kvConnectorOutput = out.kvConnectorOutput
                        try channel.send(MultiprocReply.output(report))
                    }
                }
            case .shutdown:
                return
            }
        }
    }
}

/// The step as a non-driver worker runs it: the same batch, but every new request samples greedily
/// without logprobs or penalties, since only the driver's tokens count (this worker's runner still
/// samples after the forward pass; this makes that a cheap argmax over zeroed rows). `promptLogprobs`
/// stays: it adds logits rows, and every TP rank must gather the same rows.
func withoutSampling(_ s: SchedulerOutput) -> SchedulerOutput {
    if s.scheduledNewReqs.isEmpty { return s }
    var t = s
    for i in t.scheduledNewReqs.indices {
        var p = SamplingParams.greedy
        p.maxTokens = t.scheduledNewReqs[i].sampling.maxTokens
        p.promptLogprobs = t.scheduledNewReqs[i].sampling.promptLogprobs
        t.scheduledNewReqs[i].sampling = p
    }
    return t
}

/// One pipeline stage as the `ModelRunner` sees it: receives hidden + residual [2, N, hiddenSize] from
/// the previous stage, runs this stage's layers, sends its hidden + residual to the next stage. Only the
/// driver (last stage, TP rank 0) asks for logits; other ranks' logits rows are zeroed so their
/// (discarded) sampling reads defined values. The runner on every rank keeps the same request states.
final class PipelineStageModel: RunnableModel {
    let inner: RunnableModel
    let hiddenSize: Int
    let pp: Communicator
    let producesLogits: Bool
    private var hiddenIn: UnsafeMutablePointer<Float>
    private var hiddenOut: UnsafeMutablePointer<Float>
    private var capacityTokens: Int

    init(_ inner: RunnableModel, hiddenSize: Int, pipelineGroup: Communicator, producesLogits: Bool, maxTokens: Int) {
        self.inner = inner
        self.hiddenSize = hiddenSize
        self.pp = pipelineGroup
        self.producesLogits = producesLogits
        capacityTokens = pipelineGroup.worldSize > 1 ? max(1, maxTokens) : 0
        hiddenIn = .allocate(capacity: max(1, 2 * capacityTokens * hiddenSize))
        hiddenOut = .allocate(capacity: max(1, 2 * capacityTokens * hiddenSize))
    }

    deinit { hiddenIn.deallocate(); hiddenOut.deallocate() }

    var vocabSize: Int { inner.vocabSize }
    var eosTokenIds: [Int] { inner.eosTokenIds }
    var maxPositionEmbeddings: Int { inner.maxPositionEmbeddings }
    func kvCacheBytesPerBlock(blockSize: Int) -> Int { inner.kvCacheBytesPerBlock(blockSize: blockSize) }
    func allocateKVCache(numBlocks: Int, blockSize: Int) throws { try inner.allocateKVCache(numBlocks: numBlocks, blockSize: blockSize) }

    func expertParallelIdleStep() throws { try inner.expertParallelIdleStep() }
    var expertParallelReport: ExpertParallelStats? { inner.expertParallelReport }

    func forward(
        _ batch: ForwardBatch, hiddenIn _: UnsafePointer<Float>?, hiddenOut _: UnsafeMutablePointer<Float>?,
        logits: UnsafeMutablePointer<Float>?
    ) throws {
        let stage = pp.rank, stages = pp.worldSize
        let n = batch.tokenIds.count
        if stages > 1 && n > capacityTokens {
            hiddenIn.deallocate(); hiddenOut.deallocate()
            capacityTokens = n
            hiddenIn = .allocate(capacity: 2 * n * hiddenSize)
            hiddenOut = .allocate(capacity: 2 * n * hiddenSize)
        }
        let count = 2 * n * hiddenSize
        if !producesLogits, let logits { logits.update(repeating: 0, count: batch.logitsIndices.count * inner.vocabSize) }
        if stage > 0 { try pp.recv(hiddenIn, count: count, from: stage - 1) }
        let last = stage == stages - 1
        try inner.forward(
            batch, hiddenIn: stage > 0 ? UnsafePointer(hiddenIn) : nil, hiddenOut: last ? nil : hiddenOut,
            logits: last && producesLogits ? logits : nil)
        if !last { try pp.send(hiddenOut, count: count, to: stage + 1) }
    }
}
