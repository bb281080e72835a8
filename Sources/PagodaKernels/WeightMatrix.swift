/// Element type of a weight matrix as the GEMM reads it. f16 checkpoints are upcast to f32 at load.
public enum WeightDType: Sendable, Equatable {
    case bf16
    case f32

    public var byteSize: Int { self == .bf16 ? 2 : 4 }
}

/// A read-only view of a row-major weight matrix [rows, cols] (PyTorch `nn.Linear` layout [out, in]),
/// usually pointing straight into a memory-mapped safetensors file.
///
/// `rowStride` (elements) may exceed `cols`: a column slice (row-parallel shard) is a view, not a copy.
/// No alignment is assumed; kernels use unaligned loads.
public struct WeightMatrix: @unchecked Sendable {
    public var base: UnsafeRawPointer
    public var rows: Int
    public var cols: Int
    public var rowStride: Int
    public var dtype: WeightDType

    public init(base: UnsafeRawPointer, rows: Int, cols: Int, rowStride: Int? = nil, dtype: WeightDType) {
        self.base = base
        self.rows = rows
        self.cols = cols
        self.rowStride = rowStride ?? cols
        self.dtype = dtype
    }

    /// Start of row `r`.
    @inline(__always)
    public func row(_ r: Int) -> UnsafeRawPointer { base + r * rowStride * dtype.byteSize }

    /// Rows `range` (column-parallel shard: a contiguous block of output features).
    public func slicingRows(_ range: Range<Int>) -> WeightMatrix {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows)
        return WeightMatrix(base: row(range.lowerBound), rows: range.count, cols: cols, rowStride: rowStride, dtype: dtype)
    }

    /// Columns `range` (row-parallel shard: a block of input features of every row).
    public func slicingColumns(_ range: Range<Int>) -> WeightMatrix {
        precondition(range.lowerBound >= 0 && range.upperBound <= cols)
        return WeightMatrix(
            base: base + range.lowerBound * dtype.byteSize, rows: rows, cols: range.count, rowStride: rowStride,
            dtype: dtype)
    }

    /// Element (r, c) as Float (slow; for reference kernels, biases and embeddings).
    @inline(__always)
    public func element(_ r: Int, _ c: Int) -> Float {
        switch dtype {
        case .bf16: return BFloat16.toFloat(row(r).loadUnaligned(fromByteOffset: c * 2, as: UInt16.self))
        case .f32: return row(r).loadUnaligned(fromByteOffset: c * 4, as: Float.self)
        }
    }

    /// Copies row `r` as Float into `out` (cols elements): embedding lookup.
    @inline(__always)
    public func copyRow(_ r: Int, to out: UnsafeMutablePointer<Float>) {
        let p = row(r)
        switch dtype {
        case .bf16:
            for c in 0..<cols { out[c] = BFloat16.toFloat(p.loadUnaligned(fromByteOffset: c * 2, as: UInt16.self)) }
        case .f32:
            for c in 0..<cols { out[c] = p.loadUnaligned(fromByteOffset: c * 4, as: Float.self) }
        }
    }
}

/// bfloat16 <-> Float bit conversions (bf16 is the upper half of an IEEE float32).
public enum BFloat16 {
    @inline(__always)
    public static func toFloat(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    /// Round to nearest even (NaN kept quiet).
    @inline(__always)
    public static func fromFloat(_ x: Float) -> UInt16 {
        let b = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: (b >> 16) | 0x40) }
        let rounding = ((b >> 16) & 1) &+ 0x7FFF
        return UInt16(truncatingIfNeeded: (b &+ rounding) >> 16)
    }
}
