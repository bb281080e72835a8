import Foundation
import PagodaDistributed
import PagodaKernels

/// Everything an engine needs, built once by the command line (or `LLM`) and validated once;
/// each component receives only its part (vLLM's `VllmConfig`).
public struct EngineConfig: Sendable, Codable, Equatable {
    public var model: ModelLoadConfig
    public var cache: CacheConfig
    public var scheduler: SchedulerConfig
    public var parallel: ParallelConfig
    /// Seeds the sampler's generator for requests without their own seed.
    public var seed: UInt64
    /// `--kv-transfer-config`: the KV connector for prefill/decode disaggregation (nil: none).
    public var kvTransfer: KVTransferConfig?
    /// The deployment's shared secret for internal connections (KV transfer, TP rendezvous). Never encoded:
    /// the JSON of a config travels on command lines; processes hand the secret on through a pipe or the
    /// workers' private socket.
    public var internalSecret: PeerSecret? = nil

    private enum CodingKeys: String, CodingKey {
        case model, cache, scheduler, parallel, seed, kvTransfer
    }

    public init(
        model: ModelLoadConfig, cache: CacheConfig = CacheConfig(), scheduler: SchedulerConfig = SchedulerConfig(),
        parallel: ParallelConfig = ParallelConfig(), seed: UInt64 = 0, kvTransfer: KVTransferConfig? = nil
    ) {
        self.model = model; self.cache = cache; self.scheduler = scheduler; self.parallel = parallel; self.seed = seed
        self.kvTransfer = kvTransfer
    }

    /// Checks every value that does not need the model; throws the first problem as a one-line error.
    public func validate() throws {
        try model.validate()
        try cache.validate()
        try scheduler.validate()
        try parallel.validate()
        if kvTransfer != nil, parallel.pipelineParallelSize > 1 || (parallel.maxConcurrentBatches ?? 1) > 1 {
            throw EngineConfigError.invalid(
                "--kv-transfer-config", "KV transfer runs with --pipeline-parallel-size 1 (and one batch in flight) only for now")
        } else if let kv = kvTransfer, kv.connector != .tcp, parallel.executorBackend != .uni {
            throw EngineConfigError.invalid(
                "--kv-transfer-config",
                "\(kv.connectorName) runs with the in-process executor only "
                    + "(--tensor-parallel-size 1, no --distributed-executor-backend mp); TCPConnector supports tensor parallelism")
        }
        if !scheduler.enableChunkedPrefill, let len = model.maxModelLen, scheduler.maxNumBatchedTokens < len {
            throw EngineConfigError.invalid(
                "--max-num-batched-tokens",
                "\(scheduler.maxNumBatchedTokens) is smaller than --max-model-len \(len); "
                    + "without --enable-chunked-prefill a whole prompt must fit in one step")
        }
    }
}

/// A configuration value that is out of range; names the flag.
public enum EngineConfigError: Error, CustomStringConvertible, Equatable {
    case invalid(_ flag: String, _ reason: String)
    public var description: String {
        switch self {
        case .invalid(let flag, let reason): return "invalid \(flag): \(reason)"
        }
    }
}

/// The activation dtype flag (`--dtype`). Weights stay in their file dtype. `auto` (as in vLLM: a bf16 model
/// computes in bf16) and `bfloat16` round the activations entering the weight GEMMs of bf16 weights to bf16, with
/// f32 accumulation, on CPUs with AVX512-BF16; f32 weights, or a CPU without the instructions, compute in float32.
/// `float32` (and `float16`, which Pagoda does not compute in) always computes in float32: it reproduces the
/// Hugging Face float32 reference within 1e-3.
public enum ModelDType: String, Sendable, Codable, CaseIterable {
    case auto, float32, bfloat16, float16

    /// The GEMM arithmetic this flag selects.
    public var gemmPrecision: GemmPrecision { self == .bfloat16 || self == .auto ? .bfloat16 : .float32 }
}

/// `--quantization`: the ggml block format the linear layers of a float (safetensors) model are quantized to
/// at load (weights already quantized, as in a GGUF file, stay as they are).
public enum Quantization: String, Sendable, Codable, CaseIterable {
    case q8_0, q4_0

    public var weightDType: WeightDType { self == .q8_0 ? .q8_0 : .q4_0 }
}

/// Where the model is and how it is loaded.
public struct ModelLoadConfig: Sendable, Codable, Equatable {
    /// A Hugging Face model folder (config.json, *.safetensors, tokenizer files).
    public var path: String
    public var dtype: ModelDType
    /// nil: the model's `max_position_embeddings`.
    public var maxModelLen: Int?
    /// Threads of the numeric thread pool; nil: all cores.
    public var threads: Int?
    /// `--quantization`: quantize the float weights of the linear layers to this block format at load.
    public var quantization: Quantization?
    /// `--max-logprobs`: the most `logprobs` / `top_logprobs` / `prompt_logprobs` a request may ask for
    /// (vLLM's default 20); -1: the vocabulary size.
    public var maxLogprobs: Int

    public init(
        path: String, dtype: ModelDType = .auto, maxModelLen: Int? = nil, threads: Int? = nil,
        quantization: Quantization? = nil, maxLogprobs: Int = SamplingParams.maxLogprobs
    ) {
        self.path = path; self.dtype = dtype; self.maxModelLen = maxModelLen; self.threads = threads
        self.quantization = quantization; self.maxLogprobs = maxLogprobs
    }

    func validate() throws {
        if let len = maxModelLen, len < 1 { throw EngineConfigError.invalid("--max-model-len", "must be at least 1, got \(len)") }
        if let t = threads, t < 1 { throw EngineConfigError.invalid("--threads", "must be at least 1, got \(t)") }
        if maxLogprobs < -1 {
            throw EngineConfigError.invalid("--max-logprobs", "must be -1 (the vocabulary size) or at least 0, got \(maxLogprobs)")
        }
    }

    /// `maxLogprobs` for a vocabulary of `vocabSize` tokens (-1 resolved).
    public func resolvedMaxLogprobs(vocabSize: Int) -> Int { maxLogprobs == -1 ? vocabSize : maxLogprobs }
}

/// The paged KV cache: block size, memory budget and prefix caching.
public struct CacheConfig: Sendable, Codable, Equatable {
    /// Tokens per KV block.
    public var blockSize: Int = 16
    /// Exact KV-cache budget in bytes (all layers, K and V); wins over `gpuMemoryUtilization`.
    public var kvCacheMemoryBytes: Int? = nil
    /// Fraction of system memory the engine may use (weights + KV cache) when no byte budget is given.
    /// nil: the KV cache gets `defaultKVCacheBytes` (at most 0.9 of memory minus weights), like vLLM's CPU
    /// backend (`VLLM_CPU_KVCACHE_SPACE`, 4 GiB), because the cache is committed memory on a CPU host.
    public var gpuMemoryUtilization: Double? = nil
    public static let defaultKVCacheBytes = 4 << 30
    public var enablePrefixCaching: Bool = true
    /// Test hook: exact number of KV blocks (wins over both budgets).
    public var numBlocksOverride: Int? = nil

    public init(
        blockSize: Int = 16, kvCacheMemoryBytes: Int? = nil, gpuMemoryUtilization: Double? = nil,
        enablePrefixCaching: Bool = true, numBlocksOverride: Int? = nil
    ) {
        self.blockSize = blockSize; self.kvCacheMemoryBytes = kvCacheMemoryBytes
        self.gpuMemoryUtilization = gpuMemoryUtilization; self.enablePrefixCaching = enablePrefixCaching
        self.numBlocksOverride = numBlocksOverride
    }

    func validate() throws {
        if ![1, 2, 4, 8, 16, 32, 64, 128, 256].contains(blockSize) {
            throw EngineConfigError.invalid("--block-size", "must be a power of two from 1 to 256, got \(blockSize)")
        }
        if let b = kvCacheMemoryBytes, b <= 0 { throw EngineConfigError.invalid("--kv-cache-memory-bytes", "must be positive, got \(b)") }
        if let u = gpuMemoryUtilization, !(u > 0 && u <= 1) {
            throw EngineConfigError.invalid("--gpu-memory-utilization", "must be in (0, 1], got \(u)")
        }
        if let n = numBlocksOverride, n < 1 { throw EngineConfigError.invalid("num-blocks", "must be at least 1, got \(n)") }
    }
}

/// The scheduler's per-step limits.
public struct SchedulerConfig: Sendable, Codable, Equatable {
    /// Most requests in one step (and running at once).
    public var maxNumSeqs: Int = 256
    /// Token budget of one step (prefill chunks + decodes).
    public var maxNumBatchedTokens: Int = 2048
    /// Split long prompts into chunks across steps (vLLM v1's default).
    public var enableChunkedPrefill: Bool = true

    public init(maxNumSeqs: Int = 256, maxNumBatchedTokens: Int = 2048, enableChunkedPrefill: Bool = true) {
        self.maxNumSeqs = maxNumSeqs; self.maxNumBatchedTokens = maxNumBatchedTokens; self.enableChunkedPrefill = enableChunkedPrefill
    }

    func validate() throws {
        if maxNumSeqs < 1 { throw EngineConfigError.invalid("--max-num-seqs", "must be at least 1, got \(maxNumSeqs)") }
        if maxNumBatchedTokens < 1 {
            throw EngineConfigError.invalid("--max-num-batched-tokens", "must be at least 1, got \(maxNumBatchedTokens)")
        }
        if maxNumBatchedTokens < maxNumSeqs {
            throw EngineConfigError.invalid(
                "--max-num-batched-tokens", "\(maxNumBatchedTokens) is smaller than --max-num-seqs \(maxNumSeqs)")
        }
    }
}

/// How the model is spread over processes (tensor × pipeline inside one engine; data-parallel rank), and how
/// the multiprocess executor starts and connects its workers. Built once at the command-line edge (flags, with
/// the `PAGODA_*` environment variables as fallbacks read only there) and sent to every worker in its init message.
public struct ParallelConfig: Sendable, Codable, Equatable {
    public enum ExecutorBackend: String, Sendable, Codable, CaseIterable {
        /// The model runs in the engine-core process (TP = PP = 1).
        case uni
        /// One worker process per (pipeline stage, tensor rank).
        case mp
        /// Like `mp`, with the workers placed by Ray: one placement-group bundle each, started by a Ray actor
        /// on the bundle's node (`RayExecutor`, settings in `ray`).
        case ray
    }
    /// How the workers of one engine exchange tensors.
    public enum Transport: String, Sendable, Codable, CaseIterable {
        /// Shared memory: every worker on this host.
        case shm
        /// TCP: workers may be on other hosts or network namespaces.
        case tcp
    }
    public var tensorParallelSize: Int = 1
    public var pipelineParallelSize: Int = 1
    /// nil: `uni` when TP × PP = 1, else `mp`.
    public var distributedExecutorBackend: ExecutorBackend? = nil
    public var dataParallelSize: Int = 1
    public var dataParallelRank: Int = 0
    /// Layers per pipeline stage (`--pipeline-layer-partition`, `PAGODA_PP_LAYER_PARTITION`, vLLM's
    /// `VLLM_PP_LAYER_PARTITION`); nil: an even split. Its sum is checked against the model at load.
    public var pipelineLayerPartition: [Int]? = nil
    /// Steps in flight in the multiprocess executor (vLLM's batch queue); nil: the pipeline stages.
    public var maxConcurrentBatches: Int? = nil
    /// Seconds a worker's collective waits for a peer before it fails naming that peer.
    public var communicatorTimeoutSeconds: Double = 600
    /// nil: shared memory, or TCP when `workerHosts` is set.
    public var transport: Transport? = nil
    /// Per worker rank, the IPv4 address it is reached at (workers on other hosts or namespaces); nil: this host.
    public var workerHosts: [String]? = nil
    /// A command put before each worker's command line, `{rank}` replaced by its rank (e.g. `ip netns exec ns{rank}`);
    /// it must exec the worker, so that its pid is the worker's.
    public var workerLaunchPrefix: [String] = []
    /// The IPv4 address of this engine's node that its workers reach it at over TCP (workers on other hosts:
    /// the Ray executor sets its node's Ray address); nil: a Unix socket in `TMPDIR` (workers share this host's
    /// file system). See `MultiprocTCPControl`.
    public var workerControlHost: String? = nil
    /// The `pagoda` executable the workers run; nil: this process if it is `pagoda`, else a `pagoda` beside it.
    public var workerExecutable: String? = nil
    /// The CPUs this engine's threads (and its workers') run on: a data-parallel rank's share of the host,
    /// set by the API server that starts several engines; nil: every CPU this process may use.
    public var engineCPUs: [Int]? = nil
    /// How to reach Ray and what a worker's bundle holds (`--distributed-executor-backend ray`, and the engine
    /// cores of `--data-parallel-backend ray`); nil: `RaySettings()`.
    public var ray: RaySettings? = nil
    /// `--enable-expert-parallel`: the experts of every MoE layer spread whole over an expert-parallel group
    /// of all DP × TP workers (`ExpertPlacement`), tokens dispatched and combined by all-to-all.
    public var enableExpertParallel = false
    /// Where the expert-parallel group of a data-parallel deployment meets (`shm:/name` or `tcp:host:port`),
    /// set by the server that starts the DP engines; nil with DP = 1 (the group is then the TP group).
    public var expertParallelGroupAddress: String? = nil
    /// Where the DP engine cores meet for the wave protocol's all-ranks check (DP lock-step of a MoE model
    /// under expert parallelism); set with `expertParallelGroupAddress`.
    public var dataParallelControlAddress: String? = nil
    /// Expert-parallel steps between two expert-load reports (`--expert-load-report-interval`).
    public var expertLoadReportInterval = 100

    public init(
        tensorParallelSize: Int = 1, pipelineParallelSize: Int = 1, distributedExecutorBackend: ExecutorBackend? = nil,
        dataParallelSize: Int = 1, dataParallelRank: Int = 0, pipelineLayerPartition: [Int]? = nil,
        maxConcurrentBatches: Int? = nil, communicatorTimeoutSeconds: Double = 600, transport: Transport? = nil,
        workerHosts: [String]? = nil, workerLaunchPrefix: [String] = [], workerExecutable: String? = nil
    ) {
        self.tensorParallelSize = tensorParallelSize; self.pipelineParallelSize = pipelineParallelSize
        self.distributedExecutorBackend = distributedExecutorBackend
        self.dataParallelSize = dataParallelSize; self.dataParallelRank = dataParallelRank
        self.pipelineLayerPartition = pipelineLayerPartition; self.maxConcurrentBatches = maxConcurrentBatches
        self.communicatorTimeoutSeconds = communicatorTimeoutSeconds; self.transport = transport
        self.workerHosts = workerHosts; self.workerLaunchPrefix = workerLaunchPrefix; self.workerExecutable = workerExecutable
    }

    /// Workers inside one engine (TP × PP).
    public var worldSize: Int { tensorParallelSize * pipelineParallelSize }
    /// The backend actually used.
    public var executorBackend: ExecutorBackend { distributedExecutorBackend ?? (worldSize == 1 ? .uni : .mp) }
    /// The transport actually used.
    public var effectiveTransport: Transport { transport ?? (workerHosts != nil ? .tcp : .shm) }

    func validate() throws {
        if tensorParallelSize < 1 {
            throw EngineConfigError.invalid("--tensor-parallel-size", "must be at least 1, got \(tensorParallelSize)")
        }
        if pipelineParallelSize < 1 {
            throw EngineConfigError.invalid("--pipeline-parallel-size", "must be at least 1, got \(pipelineParallelSize)")
        }
        if distributedExecutorBackend == .uni && worldSize > 1 {
            throw EngineConfigError.invalid(
                "--distributed-executor-backend", "uni runs one process; tensor × pipeline parallel size \(worldSize) needs mp")
        }
        if dataParallelSize < 1 { throw EngineConfigError.invalid("--data-parallel-size", "must be at least 1, got \(dataParallelSize)") }
        if dataParallelRank < 0 || dataParallelRank >= dataParallelSize {
            throw EngineConfigError.invalid("--data-parallel-rank", "must be in 0..<\(dataParallelSize), got \(dataParallelRank)")
        }
        if let p = pipelineLayerPartition {
            guard p.count == pipelineParallelSize, p.allSatisfy({ $0 >= 1 }) else {
                throw EngineConfigError.invalid(
                    "--pipeline-layer-partition",
                    "\(p.map(String.init).joined(separator: ",")) must give a positive layer count "
                        + "for each of the \(pipelineParallelSize) pipeline stages")
            }
        }
        if let m = maxConcurrentBatches, m < 1 {
            throw EngineConfigError.invalid("--max-concurrent-batches", "must be at least 1, got \(m)")
        }
        if !(communicatorTimeoutSeconds > 0) || !communicatorTimeoutSeconds.isFinite {
            throw EngineConfigError.invalid(
                "--distributed-timeout-seconds", "must be a positive number of seconds, got \(communicatorTimeoutSeconds)")
        }
        if let hosts = workerHosts {
            guard hosts.count == worldSize, hosts.allSatisfy(Self.isWorkerHost) else {
                throw EngineConfigError.invalid(
                    "--worker-hosts",
                    "must list \(worldSize) addresses (one per worker rank, comma-separated), got '\(hosts.joined(separator: ","))'")
            }
            if transport == .shm {
                throw EngineConfigError.invalid(
                    "--distributed-transport", "shm cannot reach workers on other hosts (--worker-hosts is set)")
            }
        }
        if let host = workerControlHost, !Self.isWorkerHost(host) {
            throw EngineConfigError.invalid("--worker-control-host", "must be an IPv4 address, got '\(host)'")
        }
        if let exe = workerExecutable, exe.isEmpty { throw EngineConfigError.invalid("--worker-executable", "empty path") }
        if enableExpertParallel && pipelineParallelSize > 1 {
            throw EngineConfigError.invalid("--enable-expert-parallel", "runs with --pipeline-parallel-size 1, got \(pipelineParallelSize)")
        }
        if enableExpertParallel && dataParallelSize > 1 && (expertParallelGroupAddress == nil || dataParallelControlAddress == nil) {
            throw EngineConfigError.invalid(
                "--enable-expert-parallel",
                "with --data-parallel-size \(dataParallelSize) the engines need the addresses of their expert-parallel group")
        }
        if expertLoadReportInterval < 1 {
            throw EngineConfigError.invalid("--expert-load-report-interval", "must be at least 1 step, got \(expertLoadReportInterval)")
        }
    }

    /// The data-parallel engines of a MoE model under expert parallelism step together (DP waves).
    public var dataParallelLockStep: Bool { enableExpertParallel && dataParallelSize > 1 }
}

extension ParallelConfig {
    /// Parses a layer partition ("12,12"); `source` (the flag or variable) names it in the error.
    public static func parseLayerPartition(_ text: String, source: String) throws -> [Int] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ $0 != nil && $0! >= 1 }) else {
            throw EngineConfigError.invalid(source, "\"\(text)\" is not a comma-separated list of positive layer counts")
        }
        return parts.map { $0! }
    }

    /// Parses a comma-separated list of worker addresses; `source` names it in the error.
    public static func parseWorkerHosts(_ text: String, source: String) throws -> [String] {
        let hosts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard hosts.allSatisfy(isWorkerHost) else {
            throw EngineConfigError.invalid(source, "'\(text)' is not a comma-separated list of IPv4 addresses")
        }
        return hosts
    }

    /// A worker address as `--worker-hosts` takes it: an IPv4 address or host name (no port, no blank).
    static func isWorkerHost(_ h: String) -> Bool { !h.isEmpty && !h.contains(":") && !h.contains(" ") }

    /// Splits a launch prefix on blanks.
    public static func parseLaunchPrefix(_ text: String) -> [String] {
        text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
    }
}
