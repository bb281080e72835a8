import CPagodaKernels
import Foundation

/// Element-wise kernels of the decoder layer: SiLU·mul, residual add, bias add, softmax.
public enum Elementwise {
    /// out[r, i] = silu(gate[r, i]) · up[r, i]; silu(x) = x / (1 + e^-x). Rows with strides.
    public static func siluMul(
        gate: UnsafePointer<Float>, up: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, rows: Int, dim: Int,
        ldGate: Int? = nil, ldUp: Int? = nil, ldOut: Int? = nil
    ) {
        let lg = ldGate ?? dim, lu = ldUp ?? dim, lo = ldOut ?? dim
        for r in 0..<rows { pagoda_silu_mul(gate + r * lg, up + r * lu, out + r * lo, Int64(dim)) }
    }

    /// y[i] += alpha · x[i] for i < count (fused multiply-add).
    @inline(__always)
    public static func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ count: Int) {
        Vector.axpy(alpha, x, y, count)
    }

    /// Index of the largest of x[0..<count] (the first one on ties); greedy sampling.
    public static func argmax(_ x: UnsafePointer<Float>, count: Int) -> Int {
        var best = 0
        var value = x[0]
        for i in 1..<max(count, 1) where x[i] > value {
            best = i
            value = x[i]
        }
        return best
    }

    /// max |a[i] - b[i]| (for comparing logits in tests and checks).
    public static func maxAbsDifference(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        var m: Float = 0
        for i in 0..<count { m = max(m, abs(a[i] - b[i])) }
        return m
    }

    /// y[i] += x[i] for i < count.
    public static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        Vector.axpy(1, x, y, count)
    }

    /// Adds bias[j] to every row of x [rows, dim] (row stride ld).
    public static func addBias(
        _ bias: UnsafePointer<Float>, to x: UnsafeMutablePointer<Float>, rows: Int, dim: Int, ld: Int? = nil
    ) {
        let ld = ld ?? dim
        for r in 0..<rows { Vector.axpy(1, bias, x + r * ld, dim) }
    }

    /// In place: x = softmax(x) over n elements (max-subtracted, float32).
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count n: Int) {
        if n == 0 { return }
        var m = -Float.infinity
        for i in 0..<n where x[i] > m { m = x[i] }
        var s: Float = 0
        for i in 0..<n {
            let e = expf(x[i] - m)
            x[i] = e
            s += e
        }
        let inv = 1 / s
        for i in 0..<n { x[i] *= inv }
    }

    /// out[t, :] = table[ids[t], :] for every token; ids outside `rowRange` give zero rows (the
    /// vocabulary-parallel embedding: each rank holds rows `rowRange` of the full table, its shard `table`).
    public static func embeddingLookup(
        ids: UnsafePointer<Int32>, count: Int, table: WeightMatrix, rowRange: Range<Int>,
        out: UnsafeMutablePointer<Float>
    ) {
        let dim = table.cols
        for t in 0..<count {
            let id = Int(ids[t])
            let o = out + t * dim
            if rowRange.contains(id) {
                table.copyRow(id - rowRange.lowerBound, to: o)
            } else {
                o.initialize(repeating: 0, count: dim)
            }
        }
    }
}
