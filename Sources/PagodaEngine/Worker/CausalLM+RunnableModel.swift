import PagodaKernels
import PagodaModel

/// The real model behind the model runner (CausalLM already has every member RunnableModel asks for).
extension CausalLM: RunnableModel {}

extension UniProcExecutor {
    /// Loads the model folder with a thread pool of `--threads` threads (default: all cores).
    static func loadCausalLM(_ c: ModelLoadConfig) throws -> RunnableModel {
        let pool = ThreadPool(threads: c.threads ?? ThreadPool.availableCPUs)
        let lm = try CausalLM(directory: c.path, threadPool: pool, maxModelLen: c.maxModelLen)
        lm.precision = c.dtype.gemmPrecision
        return lm
    }
}
