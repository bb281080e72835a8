import PagodaKernels

/// The weights of one decoder layer of the Llama family, this rank's shard, loaded from the mmapped
/// checkpoint. The differences between architectures are fields (bias, q/k norm, dense vs. experts),
/// read by the single forward in `DecoderLayer+Forward.swift`.
final class DecoderLayer {
    let inputNorm: [Float]  // [hidden]
    let postAttentionNorm: [Float]  // [hidden]
    let qProj: WeightMatrix  // [headsLocal·headDim, hidden]
    let kProj: WeightMatrix  // [kvHeadsLocal·headDim, hidden]
    let vProj: WeightMatrix
    let qBias: [Float]?
    let kBias: [Float]?
    let vBias: [Float]?
    let oProj: WeightMatrix  // [hidden, headsLocal·headDim] (column slice of the full o_proj)
    let oBias: [Float]?  // added once, after the all-reduce
    let qNorm: [Float]?  // [headDim], shared by all heads
    let kNorm: [Float]?
    let feedForward: FeedForward

    /// Dense SwiGLU MLP or a sparse mixture of experts.
    enum FeedForward {
        case dense(gate: WeightMatrix, up: WeightMatrix, down: WeightMatrix)  // [iLocal, H], [iLocal, H], [H, iLocal]
        case experts(SparseMoeBlock)
    }

    /// `experts`: the experts this rank holds (all of them unless expert-parallel).
    init(index i: Int, config c: ModelConfig, plan: ShardPlan, store: WeightStore, experts: Range<Int>? = nil) throws {
        let p = "model.layers.\(i)"
        let h = c.hiddenSize
        let d = plan.headDim
        inputNorm = try store.vector("\(p).input_layernorm.weight", count: h)
        postAttentionNorm = try store.vector("\(p).post_attention_layernorm.weight", count: h)
        let qFull = plan.numHeads * d, kvFull = plan.numKVHeads * d
        qProj = try store.matrix("\(p).self_attn.q_proj.weight", shape: [qFull, h]).slicingRows(plan.qRows)
        kProj = try store.matrix("\(p).self_attn.k_proj.weight", shape: [kvFull, h]).slicingRows(plan.kvRows)
        vProj = try store.matrix("\(p).self_attn.v_proj.weight", shape: [kvFull, h]).slicingRows(plan.kvRows)
        if c.resolvedAttentionBias {
            qBias = try store.vector("\(p).self_attn.q_proj.bias", count: qFull, range: plan.qRows)
            kBias = try store.vector("\(p).self_attn.k_proj.bias", count: kvFull, range: plan.kvRows)
            vBias = try store.vector("\(p).self_attn.v_proj.bias", count: kvFull, range: plan.kvRows)
        } else {
            (qBias, kBias, vBias) = (nil, nil, nil)
        }
        oProj = try store.matrix("\(p).self_attn.o_proj.weight", shape: [h, qFull]).columnShard(plan.qRows, "\(p).self_attn.o_proj.weight")
        oBias = store.contains("\(p).self_attn.o_proj.bias") ? try store.vector("\(p).self_attn.o_proj.bias", count: h) : nil
        if c.architecture.qkNorm {
            qNorm = try store.vector("\(p).self_attn.q_norm.weight", count: d)
            kNorm = try store.vector("\(p).self_attn.k_norm.weight", count: d)
        } else {
            (qNorm, kNorm) = (nil, nil)
        }
        if c.isMoELayer(i) {
            feedForward = .experts(
                try SparseMoeBlock(prefix: p, config: c, plan: plan, store: store, experts: experts ?? 0..<c.resolvedNumExperts))
        } else {
            let inter = c.intermediateSize ?? 0
            let r = plan.intermediateRange
            feedForward = .dense(
                gate: try store.matrix("\(p).mlp.gate_proj.weight", shape: [inter, h]).slicingRows(r),
                up: try store.matrix("\(p).mlp.up_proj.weight", shape: [inter, h]).slicingRows(r),
                down: try store.matrix("\(p).mlp.down_proj.weight", shape: [h, inter]).columnShard(r, "\(p).mlp.down_proj.weight"))
        }
    }
}

/// A sparse mixture-of-experts block (Mixtral, Qwen3-MoE): a replicated router and this rank's
/// intermediate slice of every expert, or (expert parallelism) the whole of this rank's experts only;
/// the other experts' tensors are never read.
final class SparseMoeBlock {
    let router: WeightMatrix  // [numExperts, hidden]
    /// Global ids of the experts held here; `gate[j]` is expert `localExperts.lowerBound + j`.
    let localExperts: Range<Int>
    let gate: [WeightMatrix]  // per local expert [eLocal, hidden]
    let up: [WeightMatrix]
    let down: [WeightMatrix]  // per local expert [hidden, eLocal]
    let topK: Int
    /// Renormalize the top-k softmax weights to sum 1 (Mixtral always; Qwen when norm_topk_prob).
    let renormalize: Bool

    /// Experts of the model (the router's rows).
    let numExperts: Int

    init(prefix p: String, config c: ModelConfig, plan: ShardPlan, store: WeightStore, experts: Range<Int>) throws {
        let h = c.hiddenSize
        let e = c.resolvedNumExperts
        let inter = c.resolvedExpertIntermediateSize
        let r = plan.expertIntermediateRange
        router = try store.matrix(c.architecture.routerName(p), shape: [e, h])
        numExperts = e
        localExperts = experts
        var g: [WeightMatrix] = [], u: [WeightMatrix] = [], d: [WeightMatrix] = []
        for x in experts {
            let names = c.architecture.expertNames(p, x)
            g.append(try store.matrix(names.gate, shape: [inter, h]).slicingRows(r))
            u.append(try store.matrix(names.up, shape: [inter, h]).slicingRows(r))
            d.append(try store.matrix(names.down, shape: [h, inter]).columnShard(r, names.down))
        }
        (gate, up, down) = (g, u, d)
        topK = c.numExpertsPerTok ?? 1
        renormalize = c.architecture.alwaysRenormalizeTopK || (c.normTopkProb ?? false)
    }
}

extension WeightMatrix {
    /// Columns `range` of a row-parallel weight; a block-quantized weight splits only at block boundaries, else a
    /// load error naming the tensor (the tensor-parallel size does not fit its format).
    func columnShard(_ range: Range<Int>, _ name: String) throws -> WeightMatrix {
        guard canSliceColumns(range) else {
            throw ModelLoadError.invalidParallelism(
                reason:
                    "\(name): columns \(range) of a \(dtype) weight do not start and end on its \(dtype.blockSize)-wide blocks; use another --tensor-parallel-size"
            )
        }
        return slicingColumns(range)
    }
}
