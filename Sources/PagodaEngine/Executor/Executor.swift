import Foundation

/// What the engine core needs to know about the loaded model.
public struct ModelInfo: Sendable, Codable, Equatable {
    public var vocabSize: Int
    public var eosTokenIds: [Int]
    public var maxPositionEmbeddings: Int
    /// Bytes per KV block summed over every worker of the engine.
    public var kvCacheBytesPerBlock: Int
    /// The KV servers of a KV producer's workers (`--kv-transfer-config`), by tensor-parallel rank; empty
    /// when the workers serve none (or run in the engine's process).
    public var kvServerPorts: [Int]
    public init(vocabSize: Int, eosTokenIds: [Int], maxPositionEmbeddings: Int, kvCacheBytesPerBlock: Int, kvServerPorts: [Int] = []) {
        self.vocabSize = vocabSize; self.eosTokenIds = eosTokenIds
        self.maxPositionEmbeddings = maxPositionEmbeddings; self.kvCacheBytesPerBlock = kvCacheBytesPerBlock
        self.kvServerPorts = kvServerPorts
    }
}

/// Runs the model for the engine core, in this process (`UniProcExecutor`) or in worker processes
/// (`mp`). The engine core calls, in order: `modelInfo`, `determineNumAvailableBlocks`,
/// `initializeCache`, then `executeModel` once per step, and `shutdown` at the end.
///
/// Batches in flight (pipeline parallelism): an executor with `maxConcurrentBatches` > 1 accepts a
/// step through `submitModel` before the outputs of earlier ones were collected; outputs come back in
/// submission order. `executeModel(s)` is `submitModel(s).result()`.
public protocol Executor: AnyObject {
    var modelInfo: ModelInfo { get }
    /// KV blocks that fit the cache budget (the smallest over all workers).
    func determineNumAvailableBlocks(_ cache: CacheConfig) throws -> Int
    func initializeCache(numBlocks: Int) throws
    func executeModel(_ schedulerOutput: SchedulerOutput) throws -> ModelRunnerOutput
    func shutdown()
    /// Steps worth keeping in flight (vLLM's `max_concurrent_batches`): the pipeline stages; 1 when
    /// steps run one at a time.
    var maxConcurrentBatches: Int { get }
    /// Starts a step and returns at once (or after running it, for executors without a pipeline).
    func submitModel(_ schedulerOutput: SchedulerOutput) throws -> ModelRunnerFuture
}

extension Executor {
    public var maxConcurrentBatches: Int { 1 }
    public func submitModel(_ schedulerOutput: SchedulerOutput) throws -> ModelRunnerFuture {
        ModelRunnerFuture(completed: Result { try executeModel(schedulerOutput) })
    }
}

/// The output of a submitted step, collected later (vLLM's `Future[ModelRunnerOutput]`). `result()`
/// blocks until the step is done; the engine core collects its futures in submission order.
public final class ModelRunnerFuture {
    private var outcome: Result<ModelRunnerOutput, Error>?
    private let wait: () throws -> ModelRunnerOutput

    /// A step that is still running: `wait` blocks until its output is there.
    public init(wait: @escaping () throws -> ModelRunnerOutput) { self.wait = wait }

    /// A step that already ran.
    public init(completed: Result<ModelRunnerOutput, Error>) {
        outcome = completed
        wait = { try completed.get() }
    }

    public func result() throws -> ModelRunnerOutput {
        if outcome == nil { outcome = Result { try wait() } }
        return try outcome!.get()
    }
}

/// Builds the executor that `config.parallel` names (vLLM's `Executor.get_class`).
public enum ExecutorFactory {
    public static func make(_ config: EngineConfig) throws -> Executor {
        switch config.parallel.executorBackend {
        case .uni: return try UniProcExecutor(config: config)
        case .mp: return try MultiprocExecutor(config: config)
        case .ray: return try RayExecutor(config: config)
        }
    }
}

/// KV-cache sizing shared by all executors.
public enum KVCacheSizing {
    /// Blocks for the budget: `--kv-cache-memory-bytes` if given, else `--gpu-memory-utilization` ×
    /// system memory − the model's weight files, else 4 GiB (capped at 0.9 × memory − weights).
    public static func numBlocks(_ cache: CacheConfig, bytesPerBlock: Int, weightBytes: Int) throws -> Int {
        if let n = cache.numBlocksOverride { return n }
        let memory = Double(ProcessInfo.processInfo.physicalMemory)
        let budget: Int
        if let b = cache.kvCacheMemoryBytes {
            budget = b
        } else if let u = cache.gpuMemoryUtilization {
            budget = Int(memory * u) - weightBytes
        } else {
            budget = min(CacheConfig.defaultKVCacheBytes, Int(memory * 0.9) - weightBytes)
        }
        let n = budget / max(1, bytesPerBlock)
        if n < 1 {
            throw EngineError.insufficientMemory(
                "the KV-cache budget (\(budget) bytes) is smaller than one block (\(bytesPerBlock) bytes); "
                    + "raise --kv-cache-memory-bytes or --gpu-memory-utilization")
        }
        return n
    }

    /// Total size of the `*.safetensors` (or `*.gguf`) files of a model folder, or of one GGUF file.
    public static func weightBytes(modelPath: String) -> Int {
        let fm = FileManager.default
        if modelPath.hasSuffix(".gguf") { return ((try? fm.attributesOfItem(atPath: modelPath))?[.size] as? Int) ?? 0 }
        guard let names = try? fm.contentsOfDirectory(atPath: modelPath) else { return 0 }
        var total = 0
        for n in names where n.hasSuffix(".safetensors") || n.hasSuffix(".gguf") {
            let attrs = try? fm.attributesOfItem(atPath: (modelPath as NSString).appendingPathComponent(n))
            total += (attrs?[.size] as? Int) ?? 0
        }
        return total
    }
}
