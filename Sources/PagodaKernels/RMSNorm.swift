/// RMSNorm: y = (x · (1 / sqrt(mean(x²) + eps))) · weight in float32, with the squares (float32 products) summed in
/// Double and the mean rounded to float32 as ggml's rms_norm does (HF's float32 sum agrees to float rounding).
public enum RMSNorm {
    /// x, out: [rows, dim] with row strides `ldx`/`ldo` (default dim); weight: [dim]. `out` may equal `x`.
    public static func run(
        x: UnsafePointer<Float>, weight: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, rows: Int,
        dim: Int, eps: Float, ldx: Int? = nil, ldo: Int? = nil
    ) {
        let ldx = ldx ?? dim, ldo = ldo ?? dim
        for r in 0..<rows {
            let xr = x + r * ldx
            let o = out + r * ldo
            var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
            var j = 0
            while j + 4 <= dim {
                s0 += Double(xr[j] * xr[j])
                s1 += Double(xr[j + 1] * xr[j + 1])
                s2 += Double(xr[j + 2] * xr[j + 2])
                s3 += Double(xr[j + 3] * xr[j + 3])
                j += 4
            }
            while j < dim {
                s0 += Double(xr[j] * xr[j])
                j += 1
            }
            let mean = Float((s0 + s1 + s2 + s3) / Double(dim))
            let scale = 1 / (mean + eps).squareRoot()
            let rx = UnsafeRawPointer(xr), rw = UnsafeRawPointer(weight), ro = UnsafeMutableRawPointer(o)
            let vs = SIMD16<Float>(repeating: scale)
            var i = 0
            while i + 16 <= dim {
                let v = rx.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self) * vs
                ro.storeBytes(
                    of: v * rw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self), toByteOffset: i * 4,
                    as: SIMD16<Float>.self)
                i += 16
            }
            while i < dim {
                o[i] = weight[i] * (xr[i] * scale)
                i += 1
            }
        }
    }
}
