import CPagodaKernels

/// Element type of a weight matrix as the GEMM reads it. f16 checkpoints are upcast to f32 at load.
///
/// The `q…` cases are ggml's block-quantized formats, used in place (byte tables in `QuantizedBlocks`): a row is
/// a whole number of blocks of `blockSize` weights, `blockBytes` bytes each.
public enum WeightDType: Sendable, Equatable {
    case bf16
    case f32
    case q8_0, q4_0, q4_1, q4_K, q5_K, q6_K

    /// Bytes per element; for block-quantized types rounded up to a whole byte (an upper bound; exact sizes:
    /// `WeightMatrix.byteCount`).
    public var byteSize: Int {
        switch self {
        case .bf16: return 2
        case .f32: return 4
        default: return (blockBytes + blockSize - 1) / blockSize
        }
    }

    /// Weights per block: 1 for bf16/f32, 32 for Q8_0/Q4_0/Q4_1, 256 for the K-quants.
    public var blockSize: Int {
        switch self {
        case .bf16, .f32: return 1
        case .q8_0, .q4_0, .q4_1: return 32
        case .q4_K, .q5_K, .q6_K: return 256
        }
    }

    /// Bytes per block.
    public var blockBytes: Int {
        switch self {
        case .bf16: return 2
        case .f32: return 4
        case .q8_0: return 34
        case .q4_0: return 18
        case .q4_1: return 20
        case .q4_K: return 144
        case .q5_K: return 176
        case .q6_K: return 210
        }
    }

    public var isQuantized: Bool { blockSize > 1 }

    /// Bytes of `count` consecutive elements of a row (`count` a multiple of `blockSize`).
    @inline(__always)
    public func bytes(elements count: Int) -> Int {
        switch self {
        case .bf16: return count * 2
        case .f32: return count * 4
        default: return count / blockSize * blockBytes
        }
    }
}

/// A read-only view of a row-major weight matrix [rows, cols] (PyTorch `nn.Linear` layout [out, in]),
/// usually pointing straight into a memory-mapped safetensors file.
///
/// `rowStride` (elements) may exceed `cols`: a column slice (row-parallel shard) is a view, not a copy.
/// No alignment is assumed; kernels use unaligned loads.
///
/// Block-quantized matrices (`dtype.isQuantized`, e.g. a GGUF tensor in place: `base` = the tensor's first
/// block, rows = ne[1], cols = ne[0]) keep `cols` and `rowStride` multiples of `dtype.blockSize`. Row slices
/// take any range; column slices only ranges that start and end on a block boundary (`canSliceColumns`).
public struct WeightMatrix: @unchecked Sendable {
    public var base: UnsafeRawPointer
    public var rows: Int
    public var cols: Int
    public var rowStride: Int
    public var dtype: WeightDType
    /// The same weights copied into 16-row tiles at load, tile 0 holding rows 0 ..< 16 of this view: Q4_0 and Q8_0
    /// in `BlockTiles`' layout, other block types unpacked (`UnpackedTiles`); nil when there is no such copy (the kernels
    /// then read `base`).
    public var tiles: UnsafeRawPointer?

    public init(base: UnsafeRawPointer, rows: Int, cols: Int, rowStride: Int? = nil, dtype: WeightDType) {
        self.base = base
        self.rows = rows
        self.cols = cols
        self.rowStride = rowStride ?? cols
        self.dtype = dtype
        self.tiles = nil
    }

    /// Start of row `r`.
    @inline(__always)
    public func row(_ r: Int) -> UnsafeRawPointer { base + r * rowBytes }

    /// Bytes from one row to the next.
    @inline(__always)
    public var rowBytes: Int { dtype.bytes(elements: rowStride) }

    /// Bytes of the weights this view reads (rows × cols; the gaps of a column slice excluded).
    public var byteCount: Int { rows * dtype.bytes(elements: cols) }

    /// Rows `range` (column-parallel shard: a contiguous block of output features).
    public func slicingRows(_ range: Range<Int>) -> WeightMatrix {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows)
        var slice = WeightMatrix(base: row(range.lowerBound), rows: range.count, cols: cols, rowStride: rowStride, dtype: dtype)
        if let tiles, range.lowerBound % 16 == 0 {  // a slice starting on a tile keeps its tiles
            slice.tiles =
                tiles
                + (BlockTiles.handles(dtype)
                    ? BlockTiles.bytes(dtype, rows: range.lowerBound, cols: cols)
                    : range.lowerBound / 16 * Int(pagoda_qtiles_tile_bytes(dtype.quantKernelType, Int64(cols))))
        }
        return slice
    }

    /// Columns `range` (row-parallel shard: a block of input features of every row).
    /// For block-quantized matrices the range must start and end on block boundaries (`canSliceColumns`).
    public func slicingColumns(_ range: Range<Int>) -> WeightMatrix {
        precondition(range.lowerBound >= 0 && range.upperBound <= cols)
        precondition(canSliceColumns(range), "column slice \(range) of a \(dtype) matrix is not on block boundaries")
        if range == 0..<cols { return self }  // every column (TP 1): the same view, tiles kept
        return WeightMatrix(
            base: base + dtype.bytes(elements: range.lowerBound), rows: rows, cols: range.count, rowStride: rowStride,
            dtype: dtype)
    }

    /// Whether `slicingColumns(range)` is allowed: always for bf16/f32; for block-quantized types when both ends
    /// are multiples of `dtype.blockSize` (a block is never split).
    public func canSliceColumns(_ range: Range<Int>) -> Bool {
        range.lowerBound % dtype.blockSize == 0 && range.upperBound % dtype.blockSize == 0
    }

    /// Element (r, c) as Float (slow; for reference kernels, biases and embeddings).
    @inline(__always)
    public func element(_ r: Int, _ c: Int) -> Float {
        switch dtype {
        case .bf16: return BFloat16.toFloat(row(r).loadUnaligned(fromByteOffset: c * 2, as: UInt16.self))
        case .f32: return row(r).loadUnaligned(fromByteOffset: c * 4, as: Float.self)
        default:
            let block = row(r) + dtype.bytes(elements: c - c % dtype.blockSize)
            return QuantizedBlocks.dequantize(dtype, block: block, index: c % dtype.blockSize)
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
        default:
            QuantizedBlocks.dequantizeRow(dtype, p, count: cols, into: out)
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
