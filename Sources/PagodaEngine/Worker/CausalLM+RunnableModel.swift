import PagodaDistributed
import PagodaKernels
import PagodaModel

/// The real model behind the model runner (CausalLM already has every member RunnableModel asks for).
extension CausalLM: RunnableModel {
    public var expertParallelReport: ExpertParallelStats? { expertLoadReportedThisStep ? expertParallelStats : nil }
}

extension UniProcExecutor {
    /// Loads the model folder with a thread pool of `--threads` threads (default: all cores, or all of
    /// `cpus`). With `cpus` (a data-parallel engine's share) the engine thread and the pool are pinned to
    /// them when the threads fit.
    /// `expertGroup`: the expert-parallel group (`--enable-expert-parallel`), else nil.
    static func loadCausalLM(
        _ c: ModelLoadConfig, cpus: [Int]? = nil, expertGroup: Communicator? = nil, expertLoadReportInterval: Int = 100
    ) throws -> RunnableModel {
        let pool: ThreadPool
        if let cpus, !cpus.isEmpty {
            let threads = c.threads ?? cpus.count
            pool = ThreadPool(threads: threads, cpus: cpus, pin: threads <= cpus.count)
        } else {
            pool = ThreadPool(threads: c.threads ?? ThreadPool.availableCPUs)
        }
        let parallelism = ModelParallelism(expertGroup: expertGroup, expertLoadReportInterval: expertLoadReportInterval)
        let lm = try CausalLM(
            directory: c.path, parallelism: parallelism, threadPool: pool, maxModelLen: c.maxModelLen,
            quantization: c.quantization?.weightDType)
        lm.precision = c.dtype.gemmPrecision
        return lm
    }
}

/// The KV connectors read and write the real model's paged cache block by block.
extension CausalLM: KVBlockStorage {}
