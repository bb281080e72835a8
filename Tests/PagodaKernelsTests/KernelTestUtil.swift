import PagodaKernels

/// Deterministic pseudo-random floats in [-1, 1) (SplitMix64).
struct SeededRandom {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> Float {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Float(z >> 40) / Float(1 << 23) - 1
    }
    mutating func floats(_ n: Int) -> [Float] { (0..<n).map { _ in next() } }
}

func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

/// A weight matrix backed by an owned array (kept alive by the returned storage).
final class TestWeights {
    let bytes: [UInt8]
    let matrix: WeightMatrix
    init(rows: Int, cols: Int, dtype: WeightDType, values: [Float]) {
        var b: [UInt8] = []
        for v in values {
            switch dtype {
            case .bf16: withUnsafeBytes(of: BFloat16.fromFloat(v).littleEndian) { b += $0 }
            case .f32: withUnsafeBytes(of: v.bitPattern.littleEndian) { b += $0 }
            default: preconditionFailure("TestWeights holds bf16/f32; block-quantized test data: QuantTestBlocks")
            }
        }
        bytes = b + [0, 0, 0]  // an odd tail so views need not be aligned
        matrix = bytes.withUnsafeBytes { WeightMatrix(base: $0.baseAddress!, rows: rows, cols: cols, dtype: dtype) }
    }
}
