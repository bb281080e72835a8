import CPagodaKernels

/// A block-quantized matrix (the Q6_K LM head of Q4_0 files) copied into 16-row tiles already unpacked for the
/// batched tile kernel (`pagoda_qtiles_pack`: one code byte per weight in the lane-per-row layout, float scales per 16
/// weights). Batched decode and prefill then skip the per-call unpack and transpose, which took 41 % of a
/// 32 × 128256 × 2048 Q6_K product on this CPU (perf, 2026-12-04); batch-1 decode keeps streaming the blocks. Costs
/// 1.25 bytes per weight (1.5 with offsets) beside the mapping. Built at load when the CPU has AVX512-VNNI; owns the
/// copy, which `matrix` points to and must not outlive.
public final class UnpackedTiles: @unchecked Sendable {
    public let matrix: WeightMatrix
    /// In transparent huge pages: decode streams every byte once per step.
    private let buffer: AlignedBuffer<UInt8>

    /// Tiles of `source` (block-quantized, not Q4_0, any row stride), unpacked on `pool`.
    public init(packing source: WeightMatrix, pool: ThreadPool?) {
        // Q4_0 and Q8_0 tiles have `BlockTiles`' layout: `WeightMatrix.tiles` is read by the block type.
        precondition(source.dtype.isQuantized && !BlockTiles.handles(source.dtype), "\(source.dtype) is not unpacked into tiles")
        let type = source.dtype.quantKernelType
        let tiles = (source.rows + 15) / 16
        let bytes = tiles * Int(pagoda_qtiles_tile_bytes(type, Int64(source.cols)))
        do { buffer = try AlignedBuffer(hugePagesCapacity: max(64, bytes)) } catch { fatalError("tiles of \(source.rows) x \(source.cols): \(error)") }
        let storage = UnsafeMutableRawPointer(buffer.pointer)
        let tasks = max(1, min(tiles, (pool?.threads ?? 1) * 4))
        let body: (Int) -> Void = { [storage] t in
            let scratch = UnsafeMutableRawPointer.allocate(byteCount: Int(pagoda_qgemm_scratch_bytes(0)), alignment: 64)
            defer { scratch.deallocate() }
            pagoda_qtiles_pack(
                type, source.base, Int64(source.rowBytes), Int64(source.rows), Int64(source.cols), Int64(t * tiles / tasks),
                Int64((t + 1) * tiles / tasks), storage, scratch)
        }
        if let pool { pool.parallelFor(tasks, body) } else { for t in 0..<tasks { body(t) } }
        var m = source
        m.tiles = UnsafeRawPointer(storage)
        matrix = m
    }

    /// Whether load should unpack matrices of `dtype` into tiles: Q6_K on the AVX512-VNNI kernel.
    public static func isUseful(for dtype: WeightDType) -> Bool {
        dtype == .q6_K && QuantizedGemm.bestKernel == .avx512VNNI
    }
}
