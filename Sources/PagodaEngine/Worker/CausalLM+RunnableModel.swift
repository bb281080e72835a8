import PagodaKernels
import PagodaModel

/// The real model behind the model runner.
extension CausalLM: RunnableModel {
    /// config.json's `max_position_embeddings` (4096 when a config leaves it out).
    public var maxPositionEmbeddings: Int { config.maxPositionEmbeddings ?? 4096 }
}

extension UniProcExecutor {
    /// Loads the model folder with a thread pool of `--threads` threads (default: all cores).
    static func loadCausalLM(_ c: ModelLoadConfig) throws -> RunnableModel {
        let pool = ThreadPool(threads: c.threads ?? ThreadPool.availableCPUs)
        return try CausalLM(directory: c.path, threadPool: pool)
    }
}
