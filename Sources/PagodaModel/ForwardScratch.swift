import PagodaKernels

/// Every buffer the forward pass writes, sized once for the largest batch seen (grown only when a
/// bigger one arrives), so a step allocates nothing. Shapes (N tokens, S logits rows, H hidden,
/// I the larger of this rank's dense and expert intermediate sizes, E experts, K experts per token):
///
/// | buffer | shape |
/// | --- | --- |
/// | residual, hidden, normed, expertIn, expertOut | [N, H] |
/// | q, attn | [N, headsLocal·headDim] |
/// | k, v | [N, kvHeadsLocal·headDim] |
/// | gate, up | [N, I] |
/// | ropeCos, ropeSin | [N, headDim/2] |
/// | routerLogits | [N, E];  routedExperts / routedWeights [N, K];  expertTokens / expertWeights [E, N] |
/// | scores | [threads, PagedAttention.scoresPerPosition × maxContext] |
/// | finalRows [S, H]; logitsShard [S, vocabShard]; gathered [tp, S, vocabShard] |
final class ForwardScratch {
    let residual = AlignedBuffer<Float>(), hidden = AlignedBuffer<Float>(), normed = AlignedBuffer<Float>()
    let q = AlignedBuffer<Float>(), k = AlignedBuffer<Float>(), v = AlignedBuffer<Float>()
    let attn = AlignedBuffer<Float>()
    let gate = AlignedBuffer<Float>(), up = AlignedBuffer<Float>()
    let ropeCos = AlignedBuffer<Float>(), ropeSin = AlignedBuffer<Float>()
    let tokenRequest = AlignedBuffer<Int32>()
    let routerLogits = AlignedBuffer<Float>()
    let routedExperts = AlignedBuffer<Int32>(), routedWeights = AlignedBuffer<Float>()
    let expertTokens = AlignedBuffer<Int32>(), expertWeights = AlignedBuffer<Float>()
    let expertCounts = AlignedBuffer<Int>()
    let expertIn = AlignedBuffer<Float>(), expertOut = AlignedBuffer<Float>()
    let scores = AlignedBuffer<Float>()
    let gemmWorkspace = AlignedBuffer<Float>()
    let finalRows = AlignedBuffer<Float>(), logitsShard = AlignedBuffer<Float>(), gathered = AlignedBuffer<Float>()

    private var tokens = 0
    private var expertRows = 0
    private var logitRows = 0
    private var context = 0

    /// Grows the expert buffers (gate, up [rows, I]; expertIn, expertOut [rows, H]) for one expert's rows,
    /// which under expert parallelism come from every rank and may outnumber this rank's tokens.
    func reserveExpertRows(_ rows: Int, intermediate: Int, hidden: Int) {
        guard rows > expertRows else { return }
        expertRows = rows
        gate.reserve(max(rows, tokens) * intermediate)
        up.reserve(max(rows, tokens) * intermediate)
        expertIn.reserve(max(rows, tokens) * hidden)
        expertOut.reserve(max(rows, tokens) * hidden)
    }

    /// Grows buffers for n tokens, s logits rows and a longest context of `maxContext`.
    func reserve(tokens n: Int, logitRows s: Int, maxContext: Int, dims: ModelDims) {
        if n > tokens {
            tokens = n
            for b in [residual, hidden, normed, expertIn, expertOut] { b.reserve(n * dims.hidden) }
            q.reserve(n * dims.qSize)
            attn.reserve(n * dims.qSize)
            k.reserve(n * dims.kvSize)
            v.reserve(n * dims.kvSize)
            gate.reserve(n * dims.intermediate)
            up.reserve(n * dims.intermediate)
            ropeCos.reserve(n * dims.headDim / 2)
            ropeSin.reserve(n * dims.headDim / 2)
            tokenRequest.reserve(n)
            routerLogits.reserve(n * max(dims.experts, 1))
            routedExperts.reserve(n * max(dims.topK, 1))
            routedWeights.reserve(n * max(dims.topK, 1))
            expertTokens.reserve(n * max(dims.experts, 1))
            expertWeights.reserve(n * max(dims.experts, 1))
            expertCounts.reserve(max(dims.experts, 1))
        }
        if s > logitRows {
            logitRows = s
            finalRows.reserve(s * dims.hidden)
            logitsShard.reserve(s * dims.vocabShard)
            gathered.reserve(s * dims.vocabShard * dims.tpSize)
        }
        if maxContext > context {
            context = maxContext
            scores.reserve(PagedAttention.scoresPerPosition * maxContext * dims.threads)
        }
    }
}

/// The sizes `ForwardScratch` needs, from the config and shard plan.
struct ModelDims {
    var hidden: Int
    var qSize: Int
    var kvSize: Int
    var headDim: Int
    var intermediate: Int
    var experts: Int
    /// Experts per token (num_experts_per_tok; 0 for a dense model).
    var topK: Int
    var vocabShard: Int
    var tpSize: Int
    var threads: Int
}
