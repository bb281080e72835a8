import CPagodaKernels

/// A Q4_0 or Q8_0 matrix's weights copied into 16-row tiles (`pagoda_q4_0_tiles_pack`, `pagoda_q8_0_tiles_pack`):
/// per tile and 32-weight block, 64-byte vectors whose lane r holds row r's codes, then the tile's 16 scales. Decode
/// then needs no per-row horizontal work: on this CPU a 65536 × 2048 Q4_0 matrix-vector product took 2.6-2.7 ms
/// this way against 7.6-8.9 ms reading the blocks in place (C probe, 2026-12-04), and a Q8_0 one read 21.7 against
/// 18.0 GB/s with four streams of tiles walked side by side. Q4_0 tiles serve every batch size, Q8_0 tiles batch-1 decode (m ≤ 2).
/// Built at load when the CPU has AVX512-VNNI; owns the copy, which `matrix` points to and must not outlive.
public final class BlockTiles: @unchecked Sendable {
    public let matrix: WeightMatrix
    /// In transparent huge pages: decode streams every byte once per step.
    private let buffer: AlignedBuffer<UInt8>

    /// Tiles of `source` (Q4_0 or Q8_0, any row stride), packed on `pool`.
    public init(packing source: WeightMatrix, pool: ThreadPool?) {
        precondition(Self.handles(source.dtype), "only Q4_0 and Q8_0 weights are tiled, not \(source.dtype)")
        let bytes = Self.bytes(source.dtype, rows: source.rows, cols: source.cols)
        do { buffer = try AlignedBuffer(hugePagesCapacity: max(64, bytes)) } catch { fatalError("tiles of \(source.rows) x \(source.cols): \(error)") }
        let storage = UnsafeMutableRawPointer(buffer.pointer)
        let tiles = (source.rows + 15) / 16
        let tasks = max(1, min(tiles, (pool?.threads ?? 1) * 4))
        let body: (Int) -> Void = { [storage] t in
            let pack = source.dtype == .q8_0 ? pagoda_q8_0_tiles_pack : pagoda_q4_0_tiles_pack
            pack(
                source.base, Int64(source.rowBytes), Int64(source.rows), Int64(source.cols), Int64(t * tiles / tasks),
                Int64((t + 1) * tiles / tasks), storage)
        }
        if let pool { pool.parallelFor(tasks, body) } else { for t in 0..<tasks { body(t) } }
        var m = source
        m.tiles = UnsafeRawPointer(storage)
        matrix = m
    }

    /// Whether `dtype` has this tile layout.
    public static func handles(_ dtype: WeightDType) -> Bool { dtype == .q4_0 || dtype == .q8_0 }

    /// Bytes of the tiles of `rows` rows (the offset of a row slice that starts on a tile).
    public static func bytes(_ dtype: WeightDType, rows: Int, cols: Int) -> Int {
        Int(
            dtype == .q8_0
                ? pagoda_q8_0_tiles_bytes(Int64(rows), Int64(cols)) : pagoda_q4_0_tiles_bytes(Int64(rows), Int64(cols)))
    }

    /// Whether load should tile Q4_0 and Q8_0 matrices: the tiled kernels are AVX512-VNNI only.
    public static var isUseful: Bool { QuantizedGemm.bestKernel == .avx512VNNI }
}
