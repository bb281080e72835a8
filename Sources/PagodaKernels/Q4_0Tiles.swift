import CPagodaKernels

/// A Q4_0 matrix's weights copied into 16-row tiles (`pagoda_q4_0_tiles_pack`): four 64-byte vectors per tile and
/// 32-weight block whose lane r holds row r's codes, then the tile's 16 scales. Batch-1 decode then needs no per-row
/// horizontal work: on this CPU a 65536 × 2048 Q4_0 matrix-vector product took 2.6-2.7 ms this way against 7.6-8.9 ms
/// reading the blocks in place (C probe, 2026-12-04). Built at load when the CPU has AVX512-VNNI; owns the copy,
/// which `matrix` points to and must not outlive.
public final class Q4_0Tiles: @unchecked Sendable {
    public let matrix: WeightMatrix
    private let storage: UnsafeMutableRawPointer

    /// Tiles of `source` (Q4_0, any row stride), packed on `pool`.
    public init(packing source: WeightMatrix, pool: ThreadPool?) {
        precondition(source.dtype == .q4_0, "only Q4_0 weights are tiled, not \(source.dtype)")
        let bytes = Int(pagoda_q4_0_tiles_bytes(Int64(source.rows), Int64(source.cols)))
        storage = UnsafeMutableRawPointer.allocate(byteCount: max(64, bytes), alignment: 64)
        let tiles = (source.rows + 15) / 16
        let tasks = max(1, min(tiles, (pool?.threads ?? 1) * 4))
        let body: (Int) -> Void = { [storage] t in
            pagoda_q4_0_tiles_pack(
                source.base, Int64(source.rowBytes), Int64(source.rows), Int64(source.cols), Int64(t * tiles / tasks),
                Int64((t + 1) * tiles / tasks), storage)
        }
        if let pool { pool.parallelFor(tasks, body) } else { for t in 0..<tasks { body(t) } }
        var m = source
        m.tiles = UnsafeRawPointer(storage)
        matrix = m
    }

    /// Whether load should tile Q4_0 matrices: the tiled kernel is AVX512-VNNI only.
    public static var isUseful: Bool { QuantizedGemm.bestKernel == .avx512VNNI }

    deinit { storage.deallocate() }
}
