/// RMSNorm as HF Llama/Qwen compute it in float32: y = x · rsqrt(mean(x²) + eps) · weight.
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
            let ss = Vector.dot(xr, xr, dim)
            let scale = 1 / (ss / Float(dim) + eps).squareRoot()
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
