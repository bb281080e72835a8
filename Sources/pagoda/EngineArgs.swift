import ArgumentParser
import Foundation
import PagodaEngine

/// The engine flags shared by `generate`, `serve` and the offline benchmarks (vLLM's names);
/// `makeConfig(model:)` turns them into the one validated `EngineConfig`.
struct EngineArgs: ParsableArguments {
    @Option(name: .customLong("max-model-len"), help: "Context length (prompt + output); default: the model's max_position_embeddings.")
    var maxModelLen: Int?

    @Option(name: .customLong("max-logprobs"), parsing: .unconditional,  // takes -1
            help: "The most logprobs / top_logprobs / prompt_logprobs a request may ask for; -1: the vocabulary size.")
    var maxLogprobs: Int = SamplingParams.maxLogprobs

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

    @Option(name: [.customLong("quantization"), .customShort("q")],
            help: "q8_0 or q4_0: quantize the linear layers of a safetensors model at load (ggml block formats; a GGUF file's quantized weights are used as they are).")
    var quantization: String?

    @Option(name: .customLong("seed"), help: "Random seed (the engine's sampler; generate also seeds each request with it).")
    var seed: UInt64?

    @Option(name: .customLong("threads"), help: "Threads of the numeric thread pool (default: all cores).")
    var threads: Int?

    @Option(name: [.customLong("tensor-parallel-size"), .customLong("tp", withSingleDash: true)], help: "Tensor-parallel ranks.")
    var tensorParallelSize: Int = 1

    @Option(name: [.customLong("pipeline-parallel-size"), .customLong("pp", withSingleDash: true)], help: "Pipeline stages.")
    var pipelineParallelSize: Int = 1

    @Option(name: .customLong("distributed-executor-backend"), help: "uni (in-process), mp (worker processes) or ray (worker processes placed by a running Ray cluster).")
    var distributedExecutorBackend: String?

    @Option(name: .customLong("pipeline-layer-partition"),
            help: "Layers per pipeline stage, e.g. 10,14 (default: even; env PAGODA_PP_LAYER_PARTITION or VLLM_PP_LAYER_PARTITION).")
    var pipelineLayerPartition: String?

    @Option(name: .customLong("max-concurrent-batches"),
            help: "Steps in flight with pipeline parallelism (default: the pipeline stages; env PAGODA_MAX_CONCURRENT_BATCHES).")
    var maxConcurrentBatches: Int?

    @Option(name: .customLong("distributed-timeout-seconds"),
            help: "Seconds a worker waits for a peer in a collective before failing (default 600; env PAGODA_COMM_TIMEOUT_S).")
    var distributedTimeoutSeconds: Double?

    @Flag(name: .customLong("enable-expert-parallel"),
          help: "MoE models: spread whole experts over all DP × TP ranks (each loads only its own) and move tokens by all-to-all; DP ranks then step together in waves.")
    var enableExpertParallel = false

    @Option(name: .customLong("expert-load-report-interval"),
            help: "With --enable-expert-parallel: steps between expert-load reports (/metrics, and a balancedness line in the log; default 100).")
    var expertLoadReportInterval: Int = 100

    @Option(name: .customLong("distributed-transport"),
            help: "shm or tcp between the workers of one engine (default: shm, tcp with --worker-hosts; env PAGODA_DIST_TRANSPORT).")
    var distributedTransport: String?

    @Option(name: .customLong("worker-hosts"),
            help: "Per worker rank, the IPv4 address it is reached at, comma-separated (env PAGODA_WORKER_HOSTS).")
    var workerHosts: String?

    @Option(name: .customLong("worker-launch-prefix"),
            help: "Command put before each worker's command line, {rank} replaced (e.g. 'ip netns exec ns{rank}'; env PAGODA_WORKER_LAUNCH_PREFIX).")
    var workerLaunchPrefix: String?

    @Option(name: .customLong("worker-control-host"),
            help: "This host's IPv4 address that workers on other hosts reach the engine at over TCP, with the secret (default: a Unix socket; env PAGODA_WORKER_CONTROL_HOST).")
    var workerControlHost: String?

    @Option(name: .customLong("kv-transfer-config"),
            help: ArgumentHelp("Prefill/decode disaggregation: the KV connector as JSON, e.g. "
                + "'{\"kv_connector\":\"TCPConnector\",\"kv_role\":\"kv_producer\",\"kv_port\":14579}' "
                + "(vLLM's PyNcclConnector, P2pNcclConnector, NixlConnector run as TCPConnector; "
                + "SharedStorageConnector with kv_connector_extra_config.shared_storage_path).", valueName: "json"))
    var kvTransferConfig: String?

    @Option(name: .customLong("worker-executable"),
            help: "The pagoda executable the workers run (default: this one; env PAGODA_WORKER_EXECUTABLE).")
    var workerExecutable: String?

    /// The process environment, read here only: the `PAGODA_*` fallbacks of the flags above.
    var environment: [String: String] { ProcessInfo.processInfo.environment }

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
                throw ValidationError("invalid --distributed-executor-backend: \(b) (expected uni, mp or ray)")
            }
            backend = v
        }
        var quant: Quantization? = nil
        if let q = quantization {
            guard let v = Quantization(rawValue: q.lowercased()) else {
                throw ValidationError("invalid --quantization: \(q) (expected q8_0 or q4_0)")
            }
            quant = v
        }
        do {
            var parallel = ParallelConfig(tensorParallelSize: tensorParallelSize, pipelineParallelSize: pipelineParallelSize,
                                          distributedExecutorBackend: backend)
            try applyWorkerSettings(to: &parallel)
            if parallel.executorBackend == .ray { parallel.ray = try RayEnvironment.settings(environment) }
            parallel.enableExpertParallel = enableExpertParallel
            parallel.expertLoadReportInterval = expertLoadReportInterval
            let config = EngineConfig(
                model: ModelLoadConfig(
                    path: model, dtype: dt, maxModelLen: maxModelLen, threads: threads, quantization: quant,
                    maxLogprobs: maxLogprobs),
                cache: CacheConfig(blockSize: blockSize, kvCacheMemoryBytes: kvCacheMemoryBytes,
                                   gpuMemoryUtilization: gpuMemoryUtilization, enablePrefixCaching: enablePrefixCaching),
                scheduler: SchedulerConfig(maxNumSeqs: maxNumSeqs, maxNumBatchedTokens: maxNumBatchedTokens,
                                           enableChunkedPrefill: enableChunkedPrefill),
                parallel: parallel,
                seed: seed ?? 0,
                kvTransfer: try kvTransferConfig.map { try KVTransferConfig.parse(json: $0) })
            try config.validate()
            return config
        } catch let e as EngineConfigError {
            throw ValidationError(e.description)
        } catch let e as KVTransferConfigError {
            throw ValidationError(e.description)
        }
    }

    /// The multiprocess executor's settings: each flag, else its environment variable (the one place
    /// Pagoda reads them; see docs/architecture.md, "Where settings come from"), else the default.
    private func applyWorkerSettings(to p: inout ParallelConfig) throws {
        let env = EnvironmentSetting.self
        if let text = env.value(flag: pipelineLayerPartition, flagName: "--pipeline-layer-partition",
                                    variables: ["PAGODA_PP_LAYER_PARTITION", "VLLM_PP_LAYER_PARTITION"], in: environment) {
            let partition = try ParallelConfig.parseLayerPartition(text.value, source: text.source)
            guard partition.count == p.pipelineParallelSize else {
                throw EngineConfigError.invalid(
                    text.source, "\"\(text.value)\" has \(partition.count) entries for \(p.pipelineParallelSize) pipeline stages")
            }
            p.pipelineLayerPartition = partition
        }
        if let m = try env.parsed(flag: maxConcurrentBatches, variable: "PAGODA_MAX_CONCURRENT_BATCHES", in: environment) {
            p.maxConcurrentBatches = m
        }
        if let t = try env.parsed(flag: distributedTimeoutSeconds, variable: "PAGODA_COMM_TIMEOUT_S", in: environment) {
            p.communicatorTimeoutSeconds = t
        }
        if let text = env.value(flag: distributedTransport, flagName: "--distributed-transport",
                                    variables: ["PAGODA_DIST_TRANSPORT"], in: environment) {
            guard let t = ParallelConfig.Transport(rawValue: text.value) else {
                throw EngineConfigError.invalid(text.source, "\(text.value) (expected shm or tcp)")
            }
            p.transport = t
        }
        if let text = env.value(flag: workerHosts, flagName: "--worker-hosts", variables: ["PAGODA_WORKER_HOSTS"], in: environment) {
            let hosts = try ParallelConfig.parseWorkerHosts(text.value, source: text.source)
            guard hosts.count == p.worldSize else {
                throw EngineConfigError.invalid(
                    text.source, "must list \(p.worldSize) addresses (one per worker rank, comma-separated), got '\(text.value)'")
            }
            p.workerHosts = hosts
        }
        if let text = env.value(flag: workerLaunchPrefix, flagName: "--worker-launch-prefix",
                                    variables: ["PAGODA_WORKER_LAUNCH_PREFIX"], in: environment) {
            p.workerLaunchPrefix = ParallelConfig.parseLaunchPrefix(text.value)
        }
        if let text = env.value(flag: workerControlHost, flagName: "--worker-control-host",
                                    variables: ["PAGODA_WORKER_CONTROL_HOST"], in: environment) {
            p.workerControlHost = text.value  // checked by `ParallelConfig.validate`
        }
        if let text = env.value(flag: workerExecutable, flagName: "--worker-executable",
                                    variables: ["PAGODA_WORKER_EXECUTABLE"], in: environment) {
            p.workerExecutable = text.value
        }
    }
}
