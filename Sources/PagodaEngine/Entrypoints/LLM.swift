import Foundation

/// The result of one prompt of `LLM.generate` (vLLM's `RequestOutput` with one completion).
public struct RequestResult: Sendable, Codable {
    public var requestId: String
    /// The prompt text (nil when the prompt was given as token ids).
    public var prompt: String?
    public var promptTokenIds: [Int]
    public var tokenIds: [Int]
    /// Decoded `tokenIds` (nil without a tokenizer).
    public var text: String?
    public var finishReason: FinishReason?
    public var stopReason: Int?
    public var logprobs: [TokenLogprob]?
    /// Prompt tokens served from the prefix cache.
    public var numCachedTokens: Int
}

/// The offline API (vLLM's `LLM`): loads a model once, then runs many prompts as one continuously
/// batched workload on the calling thread.
public final class LLM {
    public let engine: EngineCore
    private var nextId = 0

    /// - Parameters mirror vLLM's `LLM(...)`; anything else goes through `init(config:)`.
    public convenience init(model: String, tensorParallelSize: Int = 1, pipelineParallelSize: Int = 1,
                            maxModelLen: Int? = nil, maxNumSeqs: Int = 256, maxNumBatchedTokens: Int = 2048,
                            blockSize: Int = 16, kvCacheMemoryBytes: Int? = nil, enablePrefixCaching: Bool = true,
                            seed: UInt64 = 0, threads: Int? = nil, dtype: ModelDType = .auto,
                            quantization: Quantization? = nil,
                            distributedExecutorBackend: ParallelConfig.ExecutorBackend? = nil) throws {
        let config = EngineConfig(
            model: ModelLoadConfig(path: model, dtype: dtype, maxModelLen: maxModelLen, threads: threads, quantization: quantization),
            cache: CacheConfig(blockSize: blockSize, kvCacheMemoryBytes: kvCacheMemoryBytes, enablePrefixCaching: enablePrefixCaching),
            scheduler: SchedulerConfig(maxNumSeqs: maxNumSeqs, maxNumBatchedTokens: maxNumBatchedTokens),
            parallel: ParallelConfig(tensorParallelSize: tensorParallelSize, pipelineParallelSize: pipelineParallelSize,
                                     distributedExecutorBackend: distributedExecutorBackend),
            seed: seed)
        try self.init(config: config)
    }

    public convenience init(config: EngineConfig) throws {
        try self.init(engine: EngineCore(config: config))
    }

    public init(engine: EngineCore) {
        self.engine = engine
    }

    /// Generates for every prompt (token ids) at once; results in prompt order. The model's EOS ids end a
    /// request unless `sampling.ignoreEOS`.
    public func generate(promptTokenIds: [[Int]], sampling: SamplingParams) throws -> [RequestResult] {
        try generate(promptTokenIds: promptTokenIds, sampling: Array(repeating: sampling, count: promptTokenIds.count))
    }

    /// One SamplingParams per prompt; `extraEOS` (e.g. the tokenizer's EOS) ends requests besides the model's EOS ids.
    /// Throws `EngineError.invalidRequest` (nothing runs) when the counts differ or a request is invalid.
    public func generate(promptTokenIds: [[Int]], sampling: [SamplingParams], extraEOS: [Int] = []) throws -> [RequestResult] {
        guard sampling.count == promptTokenIds.count else {
            throw EngineError.invalidRequest(
                parameter: "sampling", reason: "\(sampling.count) sampling parameters for \(promptTokenIds.count) prompts (give one, or one per prompt)")
        }
        var results: [RequestResult] = []
        var index: [String: Int] = [:]
        var eos = engine.modelInfo.eosTokenIds
        for t in extraEOS where !eos.contains(t) { eos.append(t) }
        for (i, ids) in promptTokenIds.enumerated() {
            let id = "llm-\(nextId)"
            nextId += 1
            results.append(RequestResult(requestId: id, prompt: nil, promptTokenIds: ids, tokenIds: [], text: nil,
                                         finishReason: nil, stopReason: nil, logprobs: nil, numCachedTokens: 0))
            index[id] = i
            do {
                try engine.addRequest(EngineRequest(requestId: id, promptTokenIds: ids, sampling: sampling[i],
                                                    eosTokenIds: eos,
                                                    arrivalTime: Date().timeIntervalSince1970))
            } catch {
                engine.abortRequests(Array(index.keys))
                throw error
            }
        }
        while engine.hasUnfinishedRequests {
            for o in try engine.step() {
                guard let i = index[o.requestId] else { continue }
                results[i].tokenIds += o.newTokenIds
                if let lps = o.newLogprobs { results[i].logprobs = (results[i].logprobs ?? []) + lps }
                if let c = o.numCachedTokens { results[i].numCachedTokens = c }
                if let f = o.finishReason { results[i].finishReason = f; results[i].stopReason = o.stopReason }
            }
        }
        return results
    }
}
