import ArgumentParser
import PagodaEngine

/// The engine flags shared by `generate`, `serve` and the offline benchmarks (vLLM's names);
/// `makeConfig(model:)` turns them into the one validated `EngineConfig`.
struct EngineArgs: ParsableArguments {
    @Option(name: .customLong("max-model-len"), help: "Context length (prompt + output); default: the model's max_position_embeddings.")
    var maxModelLen: Int?

    @Option(name: .customLong("max-num-seqs"), help: "Most requests in one step.")
    var maxNumSeqs: Int = 256

    @Option(name: .customLong("max-num-batched-tokens"), help: "Token budget of one step.")
    var maxNumBatchedTokens: Int = 2048

    @Flag(name: .customLong("enable-chunked-prefill"), inversion: .prefixedNo, help: "Split long prompts into chunks across steps.")
    var enableChunkedPrefill: Bool = true

    @Option(name: .customLong("block-size"), help: "Tokens per KV-cache block.")
    var blockSize: Int = 16

    @Option(name: .customLong("kv-cache-memory-bytes"), help: "KV-cache size in bytes (wins over --gpu-memory-utilization).")
    var kvCacheMemoryBytes: Int?

    @Option(name: .customLong("gpu-memory-utilization"),
            help: "Fraction of system memory for weights + KV cache when --kv-cache-memory-bytes is not given (default: a 4 GiB KV cache).")
    var gpuMemoryUtilization: Double?

    @Flag(name: .customLong("enable-prefix-caching"), inversion: .prefixedNo, help: "Reuse the KV cache of shared prompt prefixes.")
    var enablePrefixCaching: Bool = true

    @Option(name: .customLong("dtype"),
            help: "auto|float32|bfloat16|float16. auto and bfloat16: bf16 activations in the GEMMs of bf16 weights (AVX512-BF16; logits within ~0.2 of a float32 forward); float32/float16: float32 compute (matches Hugging Face's float32 forward within 1e-3).")
    var dtype: String = "auto"

    @Option(name: .customLong("seed"), help: "Random seed (the engine's sampler; generate also seeds each request with it).")
    var seed: UInt64?

    @Option(name: .customLong("threads"), help: "Threads of the numeric thread pool (default: all cores).")
    var threads: Int?

    @Option(name: [.customLong("tensor-parallel-size"), .customLong("tp", withSingleDash: true)], help: "Tensor-parallel ranks.")
    var tensorParallelSize: Int = 1

    @Option(name: [.customLong("pipeline-parallel-size"), .customLong("pp", withSingleDash: true)], help: "Pipeline stages.")
    var pipelineParallelSize: Int = 1

    @Option(name: .customLong("distributed-executor-backend"), help: "uni (in-process) or mp (worker processes).")
    var distributedExecutorBackend: String?

    func validate() throws {
        _ = try makeConfig(model: "-")
    }

    /// The engine configuration for `model` (a model folder); throws a one-line error for a bad value.
    func makeConfig(model: String) throws -> EngineConfig {
        guard let dt = ModelDType(rawValue: dtype) else {
            throw ValidationError("invalid --dtype: \(dtype) (expected auto, float32, bfloat16 or float16)")
        }
        var backend: ParallelConfig.ExecutorBackend? = nil
        if let b = distributedExecutorBackend {
            guard let v = ParallelConfig.ExecutorBackend(rawValue: b) else {
                throw ValidationError("invalid --distributed-executor-backend: \(b) (expected uni or mp)")
            }
            backend = v
        }
        let config = EngineConfig(
            model: ModelLoadConfig(path: model, dtype: dt, maxModelLen: maxModelLen, threads: threads),
            cache: CacheConfig(blockSize: blockSize, kvCacheMemoryBytes: kvCacheMemoryBytes,
                               gpuMemoryUtilization: gpuMemoryUtilization, enablePrefixCaching: enablePrefixCaching),
            scheduler: SchedulerConfig(maxNumSeqs: maxNumSeqs, maxNumBatchedTokens: maxNumBatchedTokens,
                                       enableChunkedPrefill: enableChunkedPrefill),
            parallel: ParallelConfig(tensorParallelSize: tensorParallelSize, pipelineParallelSize: pipelineParallelSize,
                                     distributedExecutorBackend: backend),
            seed: seed ?? 0)
        do { try config.validate() } catch let e as EngineConfigError { throw ValidationError(e.description) }
        return config
    }
}
