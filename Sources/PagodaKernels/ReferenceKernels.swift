import Foundation

/// Naive twins of every fast kernel: the specification and the test oracle. Scalar loops, Double
/// accumulation where it makes the oracle more exact; never used on a hot path.
public enum ReferenceKernels {
    /// out[m, n] = Σ_k x[m, k] · w[n, k].
    public static func gemm(x: [Float], m: Int, weight w: WeightMatrix) -> [Float] {
        var out = [Float](repeating: 0, count: m * w.rows)
        for r in 0..<m {
            for n in 0..<w.rows {
                var s: Double = 0
                for c in 0..<w.cols { s += Double(x[r * w.cols + c]) * Double(w.element(n, c)) }
                out[r * w.rows + n] = Float(s)
            }
        }
        return out
    }

    public static func rmsNorm(x: [Float], weight: [Float], rows: Int, eps: Float) -> [Float] {
        let dim = weight.count
        var out = x
        for r in 0..<rows {
            var ss: Double = 0
            for i in 0..<dim { ss += Double(x[r * dim + i]) * Double(x[r * dim + i]) }
            let scale = 1 / (ss / Double(dim) + Double(eps)).squareRoot()
            for i in 0..<dim { out[r * dim + i] = Float(Double(x[r * dim + i]) * scale) * weight[i] }
        }
        return out
    }

    /// NeoX rotation of one head vector at `position` with the given inverse frequencies.
    public static func rope(_ v: [Float], position: Int, invFreq: [Float]) -> [Float] {
        let half = v.count / 2
        var out = v
        for i in 0..<half {
            let a = Double(Float(position) * invFreq[i])
            out[i] = Float(Double(v[i]) * cos(a) - Double(v[i + half]) * sin(a))
            out[i + half] = Float(Double(v[i + half]) * cos(a) + Double(v[i]) * sin(a))
        }
        return out
    }

    public static func siluMul(gate: [Float], up: [Float]) -> [Float] {
        zip(gate, up).map { g, u in Float(Double(g) / (1 + exp(-Double(g))) * Double(u)) }
    }

    public static func softmax(_ x: [Float]) -> [Float] {
        let m = x.max() ?? 0
        let e = x.map { exp(Double($0 - m)) }
        let s = e.reduce(0, +)
        return e.map { Float($0 / s) }
    }

    /// Top-k expert routing of one token (twin of `TopKRouting.run`): softmax of the router logits, the
    /// k most probable experts by a stable sort (ties to the lower index), their probabilities as
    /// weights, divided by their sum when `renormalize`.
    public static func topKRouting(logits: [Float], topK k: Int, renormalize: Bool) -> (experts: [Int], weights: [Float]) {
        let p = softmax(logits)
        let order = p.indices.sorted { p[$0] > p[$1] || (p[$0] == p[$1] && $0 < $1) }
        let experts = Array(order.prefix(k))
        let total = experts.reduce(0.0) { $0 + Double(p[$1]) }
        let weights = experts.map { renormalize ? Float(Double(p[$0]) / total) : p[$0] }
        return (experts, weights)
    }

    /// Attention of one query head over explicit K/V rows (already gathered from the cache), causal
    /// length = keys.count. keys/values: [ctx][headDim].
    public static func attention(q: [Float], keys: [[Float]], values: [[Float]], scale: Float) -> [Float] {
        var s = keys.map { k in Float(zip(q, k).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }) * scale }
        s = softmax(s)
        var out = [Float](repeating: 0, count: q.count)
        for (p, v) in values.enumerated() {
            for i in 0..<v.count { out[i] += s[p] * v[i] }
        }
        return out
    }
}
