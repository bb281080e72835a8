import PagodaDistributed
import PagodaKernels
import PagodaModel

/// Runs the model in the engine-core process: one `ModelRunner` on one `CausalLM` (TP = PP = 1).
public final class UniProcExecutor: Executor {
    public let runner: ModelRunner
    public let modelInfo: ModelInfo
    private let weightBytes: Int

    /// Loads the model folder of `config.model`.
    public convenience init(config: EngineConfig) throws {
        let model = try UniProcExecutor.loadCausalLM(
            config.model, cpus: config.parallel.engineCPUs,
            expertGroup: ExpertParallelGroup.connect(
                config.parallel, tpRank: 0, tensorGroup: nil, secret: config.internalSecret ?? .random()),
            expertLoadReportInterval: config.parallel.expertLoadReportInterval)
        self.init(model: model, config: config, weightBytes: KVCacheSizing.weightBytes(modelPath: config.model.path))
    }

    /// Wraps an already loaded model (tests, benchmarks).
    public init(model: RunnableModel, config: EngineConfig, weightBytes: Int = 0) {
        runner = ModelRunner(
            model: model, blockSize: config.cache.blockSize, scheduler: config.scheduler, seed: config.seed,
            tokenizerPath: config.model.path)
        modelInfo = ModelInfo(
            vocabSize: model.vocabSize, eosTokenIds: model.eosTokenIds, maxPositionEmbeddings: model.maxPositionEmbeddings,
            kvCacheBytesPerBlock: model.kvCacheBytesPerBlock(blockSize: config.cache.blockSize))
        self.weightBytes = weightBytes
    }

    public func determineNumAvailableBlocks(_ cache: CacheConfig) throws -> Int {
        try KVCacheSizing.numBlocks(cache, bytesPerBlock: modelInfo.kvCacheBytesPerBlock, weightBytes: weightBytes)
    }

    public func initializeCache(numBlocks: Int) throws {
        try runner.model.allocateKVCache(numBlocks: numBlocks, blockSize: runner.blockSize)
    }

    public func executeModel(_ schedulerOutput: SchedulerOutput) throws -> ModelRunnerOutput {
        try runner.execute(schedulerOutput)
    }

    public func shutdown() {}

}
