/// Which slice of every weight this tensor-parallel rank holds (Megatron-LM / vLLM layout).
///
/// - Attention: query heads split evenly; KV heads split evenly when tp ≤ numKVHeads, else each rank
///   keeps the one KV head its query heads use (replicated, as vLLM does; tp must then be a multiple of
///   numKVHeads).
/// - MLP and each expert: the intermediate dimension split evenly (gate/up rows, down columns).
/// - Vocabulary (embedding and LM head): ceil(vocab / tp) rows per rank, the last rank's shard shorter.
public struct ShardPlan: Sendable {
    public let tpRank: Int
    public let tpSize: Int
    public let numHeads: Int
    public let numKVHeads: Int
    public let headDim: Int
    /// Query heads of the full model per KV head.
    public let queriesPerKVHead: Int
    public let headsLocal: Int
    public let kvHeadsLocal: Int
    /// First KV head (global index) this rank holds.
    public let kvHeadStart: Int
    public let intermediateLocal: Int
    public let expertIntermediateLocal: Int
    /// Ranks each expert's intermediate dimension is split over: TP, or 1 with expert parallelism.
    public let expertShards: Int
    public let vocabShardSize: Int
    public let vocabRange: Range<Int>

    /// `expertParallel`: experts are spread over ranks whole (`ExpertPlacement`), not split by TP.
    public init(config: ModelConfig, tpRank: Int, tpSize: Int, expertParallel: Bool = false) throws {
        self.tpRank = tpRank
        self.tpSize = tpSize
        numHeads = config.numAttentionHeads
        numKVHeads = config.resolvedNumKVHeads
        headDim = config.resolvedHeadDim
        queriesPerKVHead = numHeads / numKVHeads
        guard numHeads % tpSize == 0 else {
            throw ModelLoadError.invalidParallelism(
                reason: "tensor_parallel_size \(tpSize) does not divide num_attention_heads \(numHeads)")
        }
        headsLocal = numHeads / tpSize
        if tpSize <= numKVHeads {
            guard numKVHeads % tpSize == 0 else {
                throw ModelLoadError.invalidParallelism(
                    reason: "tensor_parallel_size \(tpSize) does not divide num_key_value_heads \(numKVHeads)")
            }
            kvHeadsLocal = numKVHeads / tpSize
        } else {
            guard tpSize % numKVHeads == 0 else {
                throw ModelLoadError.invalidParallelism(
                    reason: "tensor_parallel_size \(tpSize) is not a multiple of num_key_value_heads \(numKVHeads)")
            }
            kvHeadsLocal = 1
        }
        kvHeadStart = tpRank * headsLocal / queriesPerKVHead
        let inter = config.intermediateSize ?? 0
        if config.resolvedNumExperts == 0 || (0..<config.numHiddenLayers).contains(where: { !config.isMoELayer($0) }) {
            guard inter % tpSize == 0 else {
                throw ModelLoadError.invalidParallelism(
                    reason: "tensor_parallel_size \(tpSize) does not divide intermediate_size \(inter)")
            }
        }
        intermediateLocal = inter / tpSize
        let expertInter = config.resolvedExpertIntermediateSize
        expertShards = expertParallel ? 1 : tpSize
        if config.resolvedNumExperts > 0 && !expertParallel {
            guard expertInter % tpSize == 0 else {
                throw ModelLoadError.invalidParallelism(
                    reason: "tensor_parallel_size \(tpSize) does not divide the experts' intermediate size \(expertInter)")
            }
        }
        expertIntermediateLocal = config.resolvedNumExperts > 0 ? expertInter / expertShards : 0
        vocabShardSize = (config.vocabSize + tpSize - 1) / tpSize
        let v0 = min(config.vocabSize, tpRank * vocabShardSize)
        vocabRange = v0..<min(config.vocabSize, v0 + vocabShardSize)
    }

    public var qRows: Range<Int> { (tpRank * headsLocal * headDim)..<((tpRank + 1) * headsLocal * headDim) }
    public var kvRows: Range<Int> { (kvHeadStart * headDim)..<((kvHeadStart + kvHeadsLocal) * headDim) }
    public var intermediateRange: Range<Int> { (tpRank * intermediateLocal)..<((tpRank + 1) * intermediateLocal) }
    public var expertIntermediateRange: Range<Int> {
        let r = expertShards == 1 ? 0 : tpRank
        return (r * expertIntermediateLocal)..<((r + 1) * expertIntermediateLocal)
    }
}
