import PagodaKernels

/// A block-quantized weight matrix in owned memory, for tests: `rows` rows of `rowStride` weights of `dtype`
/// (the matrix views the first `cols`), filled with random bytes whose f16 fields are replaced by moderate scales.
final class QuantTestMatrix {
    let bytes: UnsafeMutableRawPointer
    let byteCount: Int
    let matrix: WeightMatrix

    init(dtype: WeightDType, rows: Int, cols: Int, rowStride: Int? = nil, seed: UInt64) {
        let stride = rowStride ?? cols
        byteCount = max(1, rows * dtype.bytes(elements: stride))
        bytes = UnsafeMutableRawPointer.allocate(byteCount: byteCount + 1, alignment: 64)
        // One byte of offset: views need not be aligned.
        let base = bytes + 1
        var state = seed
        for i in 0..<byteCount {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            base.storeBytes(of: UInt8(truncatingIfNeeded: state >> 56), toByteOffset: i, as: UInt8.self)
        }
        var rng = SeededRandom(seed ^ 0x5EED)
        let blocks = byteCount / dtype.blockBytes
        for b in 0..<blocks {
            let block = base + b * dtype.blockBytes
            func f16(_ offset: Int, _ v: Float) {
                block.storeBytes(of: QuantizedBlocks.floatToHalf(v), toByteOffset: offset, as: UInt16.self)
            }
            switch dtype {
            case .q8_0: f16(0, 0.002 + 0.01 * abs(rng.next()))
            case .q4_0: f16(0, 0.05 * rng.next())
            case .q4_1: f16(0, 0.02 + 0.05 * abs(rng.next())); f16(2, -0.2 * abs(rng.next()))
            case .q4_K, .q5_K: f16(0, 0.001 + 0.003 * abs(rng.next())); f16(2, 0.002 * abs(rng.next()))
            case .q6_K: f16(208, 0.001 + 0.002 * abs(rng.next()))
            default: preconditionFailure()
            }
        }
        matrix = WeightMatrix(base: UnsafeRawPointer(base), rows: rows, cols: cols, rowStride: stride, dtype: dtype)
    }

    deinit { bytes.deallocate() }
}

/// Runs `QuantizedGemm` on [m, w.cols] activations.
func runQuantizedGemm(
    x: [Float], m: Int, weight: WeightMatrix, threads: Int, kernel: QuantizedGemm.Kernel,
    workspace: AlignedBuffer<Float> = AlignedBuffer<Float>()
) -> [Float] {
    var out = [Float](repeating: .nan, count: m * weight.rows)
    let pool = ThreadPool(threads: threads)
    x.withUnsafeBufferPointer { xp in
        out.withUnsafeMutableBufferPointer { op in
            QuantizedGemm.run(
                x: xp.baseAddress!, m: m, weight: weight, out: op.baseAddress!, workspace: workspace, pool: pool,
                kernel: kernel)
        }
    }
    return out
}

let allQuantTypes: [WeightDType] = [.q8_0, .q4_0, .q4_1, .q4_K, .q5_K, .q6_K]
