import PagodaDistributed
import PagodaKernels

/// What one step's layers share: the batch as raw pointers, scratch, the cache of this layer, the pool.
struct LayerContext {
    var n: Int  // tokens
    var positions: UnsafePointer<Int32>
    var slotMapping: UnsafePointer<Int32>
    var blockTables: [[Int32]]
    var maxContext: Int
    var scratch: ForwardScratch
    /// Rotates q and k with the step's cos/sin tables (`scratch.ropeCos` / `ropeSin`).
    var rope: RotaryEmbedding
    var pool: ThreadPool
    var tpGroup: Communicator?
    var plan: ShardPlan
    var hidden: Int
    var eps: Float
    var blockSize: Int
    /// Arithmetic of the projection GEMMs (the MoE router stays float32).
    var precision: GemmPrecision
    /// Expert parallelism: MoE layers dispatch and combine by all-to-all over its group.
    var expertParallel: ExpertParallelRuntime? = nil
}

extension DecoderLayer {
    /// One decoder layer in vLLM's residual form: on entry the stream is `residual + hidden`; on exit
    /// `residual` holds the stream before the MLP and `hidden` the MLP output.
    ///
    ///     residual += hidden; x = input_norm(residual)
    ///     hidden = o_proj(attention(rope(q(x)), rope(k(x)), v(x)))      all-reduce over TP
    ///     residual += hidden; x = post_attention_norm(residual)
    ///     hidden = mlp(x)  (dense SwiGLU or top-k experts)               all-reduce over TP
    func forward(_ c: LayerContext, keyCache: UnsafeMutablePointer<Float>, valueCache: UnsafeMutablePointer<Float>) throws {
        let s = c.scratch
        let n = c.n, h = c.hidden
        let plan = c.plan
        let d = plan.headDim
        let qSize = plan.headsLocal * d, kvSize = plan.kvHeadsLocal * d
        let residual = s.residual.pointer, hidden = s.hidden.pointer, normed = s.normed.pointer

        // Attention block.
        Elementwise.add(hidden, into: residual, count: n * h)
        inputNorm.withUnsafeBufferPointer {
            RMSNorm.run(x: residual, weight: $0.baseAddress!, out: normed, rows: n, dim: h, eps: c.eps)
        }
        let q = s.q.pointer, k = s.k.pointer, v = s.v.pointer
        if qProj.dtype.isQuantized && kProj.dtype.isQuantized && vProj.dtype.isQuantized {
            // One activation quantization and one dispatch for the three projections.
            QuantizedGemm.run(
                x: normed, m: n, .init(weight: qProj, out: q), .init(weight: kProj, out: k), .init(weight: vProj, out: v),
                workspace: s.gemmWorkspace, pool: c.pool)
        } else {
            Gemm.run(x: normed, m: n, weight: qProj, out: q, workspace: s.gemmWorkspace, pool: c.pool, precision: c.precision)
            Gemm.run(x: normed, m: n, weight: kProj, out: k, workspace: s.gemmWorkspace, pool: c.pool, precision: c.precision)
            Gemm.run(x: normed, m: n, weight: vProj, out: v, workspace: s.gemmWorkspace, pool: c.pool, precision: c.precision)
        }
        if let qBias, let kBias, let vBias {
            qBias.withUnsafeBufferPointer { Elementwise.addBias($0.baseAddress!, to: q, rows: n, dim: qSize) }
            kBias.withUnsafeBufferPointer { Elementwise.addBias($0.baseAddress!, to: k, rows: n, dim: kvSize) }
            vBias.withUnsafeBufferPointer { Elementwise.addBias($0.baseAddress!, to: v, rows: n, dim: kvSize) }
        }
        if let qNorm, let kNorm {  // per head, [n·heads, headDim]
            qNorm.withUnsafeBufferPointer {
                RMSNorm.run(x: q, weight: $0.baseAddress!, out: q, rows: n * plan.headsLocal, dim: d, eps: c.eps)
            }
            kNorm.withUnsafeBufferPointer {
                RMSNorm.run(x: k, weight: $0.baseAddress!, out: k, rows: n * plan.kvHeadsLocal, dim: d, eps: c.eps)
            }
        }
        let cosT = s.ropeCos.pointer, sinT = s.ropeSin.pointer  // [n, headDim/2], filled once per step
        c.rope.apply(q, count: n, ld: qSize, heads: plan.headsLocal, cos: cosT, sin: sinT)
        c.rope.apply(k, count: n, ld: kvSize, heads: plan.kvHeadsLocal, cos: cosT, sin: sinT)
        PagedAttention.writeKV(
            key: k, value: v, ldKey: kvSize, ldValue: kvSize, slotMapping: c.slotMapping, count: n,
            keyCache: keyCache, valueCache: valueCache, rowSize: kvSize)
        let layout = PagedAttention.Layout(
            numHeads: plan.headsLocal, numKVHeads: plan.kvHeadsLocal, headDim: d,
            queriesPerKVHead: plan.queriesPerKVHead, blockSize: c.blockSize, scale: 1 / Float(d).squareRoot())
        PagedAttention.run(
            q: q, ldq: qSize, out: s.attn.pointer, count: n, positions: c.positions,
            tokenRequest: s.tokenRequest.pointer, blockTables: c.blockTables, keyCache: keyCache,
            valueCache: valueCache, layout: layout, scores: s.scores.pointer, maxContext: c.maxContext, pool: c.pool)
        Gemm.run(x: s.attn.pointer, m: n, weight: oProj, out: hidden, workspace: s.gemmWorkspace, pool: c.pool, precision: c.precision)
        try c.tpGroup?.allReduceSum(hidden, count: n * h)
        if let oBias { oBias.withUnsafeBufferPointer { Elementwise.addBias($0.baseAddress!, to: hidden, rows: n, dim: h) } }

        // MLP block.
        Elementwise.add(hidden, into: residual, count: n * h)
        postAttentionNorm.withUnsafeBufferPointer {
            RMSNorm.run(x: residual, weight: $0.baseAddress!, out: normed, rows: n, dim: h, eps: c.eps)
        }
        switch feedForward {
        case .dense(let gate, let up, let down):
            swiGLU(c, x: normed, rows: n, gate: gate, up: up, down: down, out: hidden)
        case .experts(let moe):
            if let ep = c.expertParallel {
                try moe.forwardExpertParallel(c, x: normed, out: hidden, ep: ep)
            } else {
                moe.forward(c, x: normed, out: hidden)
            }
        }
        try c.tpGroup?.allReduceSum(hidden, count: n * h)
    }
}

/// out = down(silu(gate(x)) · up(x)) for `rows` rows of x [rows, H]; uses scratch gate/up.
func swiGLU(
    _ c: LayerContext, x: UnsafePointer<Float>, rows: Int, gate: WeightMatrix, up: WeightMatrix, down: WeightMatrix,
    out: UnsafeMutablePointer<Float>
) {
    let s = c.scratch
    let inter = gate.rows
    if gate.dtype.isQuantized && up.dtype.isQuantized {  // one activation quantization, one dispatch
        QuantizedGemm.run(
            x: x, m: rows, .init(weight: gate, out: s.gate.pointer), .init(weight: up, out: s.up.pointer),
            workspace: s.gemmWorkspace, pool: c.pool)
    } else {
        Gemm.run(x: x, m: rows, weight: gate, out: s.gate.pointer, workspace: s.gemmWorkspace, pool: c.pool, precision: c.precision)
        Gemm.run(x: x, m: rows, weight: up, out: s.up.pointer, workspace: s.gemmWorkspace, pool: c.pool, precision: c.precision)
    }
    // Row blocks over the pool (prefill: rows × inter exps are worth spreading).
    let g = s.gate.pointer, u = s.up.pointer
    let blocks = rows >= 8 ? min(rows, c.pool.threads * 4) : 1
    let per = (rows + blocks - 1) / blocks
    c.pool.parallelFor(blocks) { b in
        let r0 = b * per, r1 = min(rows, r0 + per)
        if r0 < r1 {
            Elementwise.siluMul(gate: g + r0 * inter, up: u + r0 * inter, out: g + r0 * inter, rows: r1 - r0, dim: inter)
        }
    }
    Gemm.run(x: s.gate.pointer, m: rows, weight: down, out: out, workspace: s.gemmWorkspace, pool: c.pool, precision: c.precision)
}

extension SparseMoeBlock {
    /// Top-k routing (`TopKRouting`: softmax, the k most probable, renormalized when configured); each
    /// expert runs one GEMM over the tokens routed to it, its output added with the routing weight.
    func forward(_ c: LayerContext, x: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>) {
        let s = c.scratch
        let n = c.n, h = c.hidden, e = numExperts
        let logits = s.routerLogits.pointer
        Gemm.run(x: x, m: n, weight: router, out: logits, workspace: s.gemmWorkspace, pool: c.pool)
        let chosen = s.routedExperts.pointer, chosenWeights = s.routedWeights.pointer  // [n, topK]
        TopKRouting.run(
            logits: logits, count: n, numExperts: e, topK: topK, renormalize: renormalize, experts: chosen,
            weights: chosenWeights)
        // Bucket by expert: expert j's tokens and weights at [j·n ..< j·n + counts[j]], in token order.
        let counts = s.expertCounts.pointer
        counts.initialize(repeating: 0, count: e)
        let tokens = s.expertTokens.pointer, weights = s.expertWeights.pointer
        for t in 0..<n {
            for slot in 0..<topK {
                let j = Int(chosen[t * topK + slot])
                tokens[j * n + counts[j]] = Int32(t)
                weights[j * n + counts[j]] = chosenWeights[t * topK + slot]
                counts[j] += 1
            }
        }
        out.initialize(repeating: 0, count: n * h)
        let xin = s.expertIn.pointer, yout = s.expertOut.pointer
        for j in 0..<e where counts[j] > 0 {
            let m = counts[j]
            for i in 0..<m { (xin + i * h).update(from: x + Int(tokens[j * n + i]) * h, count: h) }
            swiGLU(c, x: xin, rows: m, gate: gate[j], up: up[j], down: down[j], out: yout)
            for i in 0..<m {
                Elementwise.axpy(weights[j * n + i], yout + i * h, out + Int(tokens[j * n + i]) * h, h)
            }
        }
    }
}
