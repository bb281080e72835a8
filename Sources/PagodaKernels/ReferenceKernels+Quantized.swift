/// Naive twins of the block-quantized GEMM (`QuantizedGemm`). The float oracle is `ReferenceKernels.gemm`, which
/// reads quantized weights through `WeightMatrix.element` (the layout specification in `QuantizedBlocks`).
extension ReferenceKernels {
    /// Activations quantized per 32-block as `QuantizedGemm` (and ggml's quantize_row_q8_0 / q8_1 on x86) does:
    /// q = round-to-nearest-even(x · (127 / max|x|)), max|x| = 0 giving q = 0; the scale d = f16(max|x| / 127)
    /// and, per block, ggml's Q8_1 sum field s1 = f16((max|x| / 127) · Σq). x: [m, k], k % 32 == 0. Returns
    /// q [m, k], d and s1 [m, k / 32].
    public static func quantizeActivationsQ8(x: [Float], m: Int, k: Int) -> (q: [Int8], d: [Float], s1: [Float]) {
        precondition(k % 32 == 0)
        var q = [Int8](repeating: 0, count: m * k)
        var d = [Float](repeating: 0, count: m * k / 32)
        var s1 = d
        for r in 0..<m {
            for b in 0..<(k / 32) {
                let base = r * k + b * 32
                var amax: Float = 0
                for i in 0..<32 { amax = max(amax, abs(x[base + i])) }
                let scale = amax / 127
                let inverse: Float = amax != 0 ? 127 / amax : 0
                var sum = 0
                for i in 0..<32 {
                    q[base + i] = Int8((x[base + i] * inverse).rounded(.toNearestOrEven))
                    sum += Int(q[base + i])
                }
                d[r * (k / 32) + b] = Float(Float16(scale))
                s1[r * (k / 32) + b] = Float(Float16(scale * Float(sum)))
            }
        }
        return (q, d, s1)
    }

    /// out[r, n] = Σ_c w[n, c] · x̂[r, c], with x̂ = d · q the activations after `quantizeActivationsQ8` and w the
    /// weights as `QuantizedBlocks.dequantize` decodes them, in Double: what the fast kernel computes, up to
    /// float32 rounding. For Q4_1 (w = d_w·u + m_w per block) the minimum multiplies the block's f16 sum s1 instead of
    /// d · Σq, as ggml's Q4_1 × Q8_1 dot product does. Also returns Σ_c |w[n, c] · x̂[r, c]| per output, the scale of
    /// that rounding.
    public static func gemmQuantizedActivations(x: [Float], m: Int, weight w: WeightMatrix) -> (
        out: [Float], magnitude: [Float]
    ) {
        let k = w.cols
        let (q, d, s1) = quantizeActivationsQ8(x: x, m: m, k: k)
        var out = [Float](repeating: 0, count: m * w.rows)
        var magnitude = out
        var row = [Float](repeating: 0, count: k)
        var minimum = [Double](repeating: 0, count: k / 32)
        for n in 0..<w.rows {
            for c in 0..<k { row[c] = w.element(n, c) }
            if w.dtype == .q4_1 {
                for b in 0..<(k / 32) {
                    let bits = (w.row(n) + w.dtype.bytes(elements: 32 * b)).loadUnaligned(fromByteOffset: 2, as: UInt16.self)
                    minimum[b] = Double(Float(Float16(bitPattern: bits)))
                }
            }
            for r in 0..<m {
                var s: Double = 0, a: Double = 0
                for c in 0..<k {
                    let p = Double(row[c]) * (Double(d[r * (k / 32) + c / 32]) * Double(q[r * k + c]))
                    s += p
                    a += abs(p)
                }
                if w.dtype == .q4_1 {  // m_w · s1 in place of m_w · d · Σq
                    for b in 0..<(k / 32) {
                        var sum = 0
                        for i in 0..<32 { sum += Int(q[r * k + 32 * b + i]) }
                        let exact = Double(d[r * (k / 32) + b]) * Double(sum)
                        s += minimum[b] * (Double(s1[r * (k / 32) + b]) - exact)
                    }
                }
                out[r * w.rows + n] = Float(s)
                magnitude[r * w.rows + n] = Float(a)
            }
        }
        return (out, magnitude)
    }
}
