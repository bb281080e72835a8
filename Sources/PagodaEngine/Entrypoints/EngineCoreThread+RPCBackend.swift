import Foundation

/// The engine RPC server (helper "server", `RPC/`) drives an `EngineCoreThread` through this protocol.
extension EngineCoreThread: EngineCoreRPCBackend {
    public func currentStats() -> SchedulerStats { stats }
    // `takeKVEvents()` is EngineCoreThread's own (recorded when built with `publishKVEvents`).

    /// Utility methods: `model_info` (JSON of `ModelInfo` plus num_blocks, block_size, max_model_len),
    /// `reset_prefix_cache` ("true" when it was reset: only possible while no request holds blocks),
    /// `start_wave N` (DP lock-step of a MoE model: a request went to another data-parallel engine in wave N).
    public func utility(method: String, arguments: [String]) throws -> String {
        switch method {
        case "model_info":
            let c = core
            let info: [String: Any] = [
                "vocab_size": c.modelInfo.vocabSize, "eos_token_ids": c.modelInfo.eosTokenIds,
                "max_model_len": c.maxModelLen, "num_blocks": c.numBlocks, "block_size": c.config.cache.blockSize,
                "model": c.config.model.path,
            ]
            let data = try JSONSerialization.data(withJSONObject: info, options: [.sortedKeys])
            return String(decoding: data, as: UTF8.self)
        case "start_wave":  // DP lock-step: the front-end sent a request to another engine in wave N
            guard arguments.count == 1, let n = Int(arguments[0]), n >= 0 else {
                throw EngineError.invalidRequest(parameter: "start_wave", reason: "takes one wave number, got \(arguments)")
            }
            startWave(n)
            return "true"
        case "reset_prefix_cache":
            return try call { $0.scheduler.kvCacheManager.resetPrefixCache() } ? "true" : "false"
        default:
            throw UnknownUtilityMethod(method)
        }
    }
}
