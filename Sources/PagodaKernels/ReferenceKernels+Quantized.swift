/// Naive twins of the block-quantized GEMM (`QuantizedGemm`). The float oracle is `ReferenceKernels.gemm`, which
/// reads quantized weights through `WeightMatrix.element` (the layout specification in `QuantizedBlocks`).
extension ReferenceKernels {
    /// Activations quantized per 32-block as `QuantizedGemm` does: d = max|x| / 127 (Float), q = round-half-away(x / d)
    /// computed as x · (1 / d); d = 0 gives q = 0. x: [m, k], k % 32 == 0. Returns q [m, k] and d [m, k / 32].
    public static func quantizeActivationsQ8(x: [Float], m: Int, k: Int) -> (q: [Int8], d: [Float]) {
        precondition(k % 32 == 0)
        var q = [Int8](repeating: 0, count: m * k)
        var d = [Float](repeating: 0, count: m * k / 32)
        for r in 0..<m {
            for b in 0..<(k / 32) {
                let base = r * k + b * 32
                var amax: Float = 0
                for i in 0..<32 { amax = max(amax, abs(x[base + i])) }
                let scale = amax / 127
                let inverse: Float = scale != 0 ? 1 / scale : 0
                for i in 0..<32 { q[base + i] = Int8((x[base + i] * inverse).rounded()) }
                d[r * (k / 32) + b] = scale
            }
        }
        return (q, d)
    }

    /// out[r, n] = Σ_c w[n, c] · x̂[r, c], with x̂ = d · q the activations after `quantizeActivationsQ8` and w the
    /// weights as `QuantizedBlocks.dequantize` decodes them, in Double: what the fast kernel computes, up to
    /// float32 rounding. Also returns Σ_c |w[n, c] · x̂[r, c]| per output, the scale of that rounding.
    public static func gemmQuantizedActivations(x: [Float], m: Int, weight w: WeightMatrix) -> (
        out: [Float], magnitude: [Float]
    ) {
        let k = w.cols
        let (q, d) = quantizeActivationsQ8(x: x, m: m, k: k)
        var out = [Float](repeating: 0, count: m * w.rows)
        var magnitude = out
        var row = [Float](repeating: 0, count: k)
        for n in 0..<w.rows {
            for c in 0..<k { row[c] = w.element(n, c) }
            for r in 0..<m {
                var s: Double = 0, a: Double = 0
                for c in 0..<k {
                    let p = Double(row[c]) * (Double(d[r * (k / 32) + c / 32]) * Double(q[r * k + c]))
                    s += p
                    a += abs(p)
                }
                out[r * w.rows + n] = Float(s)
                magnitude[r * w.rows + n] = Float(a)
            }
        }
        return (out, magnitude)
    }
}
