import CPagodaKernels
import Glibc
import XCTest

@testable import PagodaKernels

/// `QuantizedGemm` (both kernels) against its naive twins, for every block type.
///
/// Tolerances, per output y[r, n]:
/// - against `ReferenceKernels.gemmQuantizedActivations` (same int8 activations, Double accumulation):
///   |Δ| ≤ 2e-5 · Σ|w·x̂| + 1e-5 — only float32 rounding of the per-group scaled sums differs.
/// - against the float product of the dequantized weights (`ReferenceKernels.gemm`, unquantized x):
///   |Δ| ≤ Σ_c |w[n, c]| · d_b(c) · (1/2 + 127 · 2⁻¹¹) + Q4_1's Σ_b |m_b| · |s1_b − d_b·Σq_b| + the tight tolerance,
///   where d_b is the block's f16 scale (≈ max|x_block| / 127) — rounding an activation to the int8 grid moves it
///   by at most half a step, the f16 scale by at most 127 · 2⁻¹¹ steps; for Q4_1 the minimum multiplies the f16
///   block sum s1 (ggml's Q8_1 `s`), whose rounding the last term bounds.
final class QuantizedGemmTests: XCTestCase {
    func check(
        _ dtype: WeightDType, m: Int, n: Int, k: Int, threads: Int = 2, kernel: QuantizedGemm.Kernel,
        slice: Bool = false, viaGemm: Bool = false, file: StaticString = #filePath, line: UInt = #line
    ) {
        let seed = UInt64(m * 1_000_003 + n * 1009 + k) ^ UInt64(dtype.blockBytes)
        let bs = dtype.blockSize
        // Sliced: rows 1..<n+1 and columns [bs, bs + k) of a bigger matrix (a TP shard of each kind).
        let stored = QuantTestMatrix(
            dtype: dtype, rows: slice ? n + 2 : n, cols: slice ? k + 2 * bs : k, seed: seed)
        let w = slice ? stored.matrix.slicingRows(1..<(n + 1)).slicingColumns(bs..<(bs + k)) : stored.matrix
        var rng = SeededRandom(seed)
        let x = (0..<(m * k)).map { i in rng.next() * (i % 7 == 0 ? 3 : 1) }
        let out: [Float]
        if viaGemm {
            var o = [Float](repeating: .nan, count: m * n)
            let pool = ThreadPool(threads: threads)
            x.withUnsafeBufferPointer { xp in
                o.withUnsafeMutableBufferPointer { op in
                    Gemm.run(
                        x: xp.baseAddress!, m: m, weight: w, out: op.baseAddress!, workspace: AlignedBuffer<Float>(),
                        pool: pool)
                }
            }
            out = o
        } else {
            out = runQuantizedGemm(x: x, m: m, weight: w, threads: threads, kernel: kernel)
        }
        let (refQ, magnitude) = ReferenceKernels.gemmQuantizedActivations(x: x, m: m, weight: w)
        let refF = ReferenceKernels.gemm(x: x, m: m, weight: w)
        let (q, d, s1) = ReferenceKernels.quantizeActivationsQ8(x: x, m: m, k: k)
        var worstTight: Float = 0, worstLoose: Float = 0
        for r in 0..<m {
            for j in 0..<n {
                let i = r * n + j
                let tight = 2e-5 * magnitude[i] + 1e-5
                var bound: Float = 0
                for c in 0..<k { bound += abs(w.element(j, c)) * d[r * (k / 32) + c / 32] * (0.5 + 127.0 / 2048) }
                if dtype == .q4_1 {
                    for b in 0..<(k / 32) {
                        let bits = (w.row(j) + 20 * b).loadUnaligned(fromByteOffset: 2, as: UInt16.self)
                        let sum = (0..<32).reduce(0) { $0 + Int(q[r * k + 32 * b + $1]) }
                        let shift = s1[r * (k / 32) + b] - d[r * (k / 32) + b] * Float(sum)
                        bound += abs(Float(Float16(bitPattern: bits))) * (abs(shift) + 1e-6 * abs(s1[r * (k / 32) + b]))
                    }
                }
                let dq = abs(out[i] - refQ[i]), df = abs(out[i] - refF[i])
                worstTight = max(worstTight, dq / tight)
                worstLoose = max(worstLoose, df / (bound * 1.0001 + tight))
            }
        }
        let what = "\(dtype) m=\(m) n=\(n) k=\(k) threads=\(threads) \(kernel) slice=\(slice)"
        XCTAssertLessThanOrEqual(worstTight, 1, "vs int8-activation reference: \(what)", file: file, line: line)
        XCTAssertLessThanOrEqual(worstLoose, 1, "vs float reference: \(what)", file: file, line: line)
        XCTAssertFalse(out.contains { $0.isNaN }, what, file: file, line: line)
        withExtendedLifetime(stored) {}
    }

    static let kernels: [QuantizedGemm.Kernel] =
        QuantizedGemm.bestKernel == .avx512VNNI ? [.avx512VNNI, .portable] : [.portable]

    /// 32-weight formats: K of an odd number of blocks (a padded half vector), more than one 512-weight chunk,
    /// N odd and not a multiple of the 16-row tile, B = 1, 2 (the streaming GEMV), 3, 16, 17, 64 (not multiples of the
    /// 8-row register tile).
    func test32BlockFormats() {
        for kernel in Self.kernels {
            for dtype in [WeightDType.q8_0, .q4_0, .q4_1] {
                for (m, n, k) in [
                    (1, 7, 96), (3, 5, 32), (16, 9, 1088), (64, 4, 160), (1, 13, 2048), (3, 1, 64), (17, 37, 544), (2, 9, 160),
                    (1, 5, 1120), (1, 3, 896), (1, 2, 4864),
                ] {
                    check(dtype, m: m, n: n, k: k, kernel: kernel)
                }
            }
        }
    }

    func testKQuantFormats() {
        for kernel in Self.kernels {
            for dtype in [WeightDType.q4_K, .q5_K, .q6_K] {
                // B = 1, 2: the streaming Q6_K GEMV (several super-blocks, N not a multiple of the tile).
                for (m, n, k) in [(1, 7, 256), (3, 5, 1280), (16, 6, 512), (64, 3, 256), (9, 33, 768), (1, 37, 2304), (2, 9, 768)] {
                    check(dtype, m: m, n: n, k: k, kernel: kernel)
                }
            }
        }
    }

    /// Tensor-parallel views: a row range and a block-aligned column range; one thread; through `Gemm.run`.
    func testSlicesSingleThreadAndGemmDispatch() {
        for dtype in allQuantTypes {
            let k = dtype.blockSize * 2
            check(dtype, m: 3, n: 6, k: k, threads: 1, kernel: QuantizedGemm.bestKernel, slice: true)
            check(dtype, m: 5, n: 7, k: k, kernel: QuantizedGemm.bestKernel, viaGemm: true)
        }
    }

    func testColumnSlicesMustBeBlockAligned() {
        let stored = QuantTestMatrix(dtype: .q4_0, rows: 2, cols: 128, seed: 1)
        let w = stored.matrix
        XCTAssertTrue(w.canSliceColumns(32..<96))
        XCTAssertFalse(w.canSliceColumns(16..<96))
        XCTAssertFalse(w.canSliceColumns(0..<40))
        let sliced = w.slicingColumns(64..<128)
        XCTAssertEqual(sliced.element(1, 3), w.element(1, 67))
        XCTAssertEqual(w.byteCount, 2 * 4 * 18)
        XCTAssertEqual(sliced.byteCount, 2 * 2 * 18)
        XCTAssertEqual(w.rowBytes, 72)
        withExtendedLifetime(stored) {}
    }

    /// Q4_0 and Q8_0 weights in 16-row tiles (`BlockTiles`) give the in-place kernel's outputs: the same integer dot
    /// per block; at m ≤ 2 the f32 sums within a few roundings (the batch-1 tiled kernels add in another order), at
    /// m > 2 the same floats (Q8_0 there reads the blocks in place). Row counts that are not whole tiles, row slices that keep the tiles (from a tile's first row)
    /// and that drop them, a partial 512-weight chunk, one and two threads.
    func testBlockTilesMatchInPlace() throws {
        // 53 rows: four tiles, the last partial; 599 rows: 38 tiles, so a task of one thread's four walks the batch-1
        // Q8_0 kernel's quarters and then the tiles left over.
        for dtype in [WeightDType.q4_0, .q8_0] {
            for rows in [53, 599] { try checkBlockTiles(dtype, rows: rows) }
        }
    }

    private func checkBlockTiles(_ dtype: WeightDType, rows: Int) throws {
        guard BlockTiles.isUseful else { throw XCTSkip("the tiled kernels need AVX512-VNNI") }
        let k = 1056  // 33 blocks: a partial second 512-weight chunk, and padding to the activations' 64-weight rows
        let plain = QuantTestMatrix(dtype: dtype, rows: rows, cols: k, seed: 31)
        let tiles = BlockTiles(packing: plain.matrix, pool: ThreadPool(threads: 2))
        XCTAssertNotNil(tiles.matrix.tiles)
        XCTAssertNotNil(tiles.matrix.slicingRows(16..<rows).tiles)
        XCTAssertNil(tiles.matrix.slicingRows(5..<30).tiles)
        XCTAssertNil(tiles.matrix.slicingColumns(0..<512).tiles)
        XCTAssertNotNil(tiles.matrix.slicingColumns(0..<k).tiles)  // all columns (a TP 1 row-parallel shard)
        var rng = SeededRandom(8)
        for m in [1, 2, 3, 9, 21] {
            for threads in [1, 2] {
                let x = rng.floats(m * k)
                for range in [0..<rows, 16..<rows, 32..<40, 5..<30] {
                    let inPlace = runQuantizedGemm(
                        x: x, m: m, weight: plain.matrix.slicingRows(range), threads: threads, kernel: .avx512VNNI)
                    let tiled = runQuantizedGemm(
                        x: x, m: m, weight: tiles.matrix.slicingRows(range), threads: threads, kernel: .avx512VNNI)
                    if m > 2 {  // the batched tile kernel: the in-place kernel's arithmetic, the same floats
                        XCTAssertEqual(tiled, inPlace, "\(dtype) m=\(m) rows \(range) threads=\(threads)")
                        continue
                    }
                    for i in inPlace.indices {
                        XCTAssertEqual(
                            tiled[i], inPlace[i], accuracy: 1e-5 * max(1, abs(inPlace[i])), "\(dtype) m=\(m) rows \(range) i=\(i)")
                    }
                }
            }
        }
        withExtendedLifetime(tiles) {}
    }

    /// Weights unpacked into tiles at load (`UnpackedTiles`) give the in-place kernel's floats exactly at m > 2 (the
    /// same apply step on the same unpacked numbers), for the types with and without offsets, the paired and the
    /// K-quant unpack, rows that are not whole tiles, and row slices that keep (from a tile's first row) or drop the
    /// tiles; at m ≤ 2 the streaming kernels read the blocks as before.
    func testUnpackedTilesMatchInPlace() throws {
        guard QuantizedGemm.bestKernel == .avx512VNNI else { throw XCTSkip("the tile kernel needs AVX512-VNNI") }
        let k = 1280  // five super-blocks: a partial second 512-weight chunk
        var rng = SeededRandom(12)
        for dtype in [WeightDType.q6_K, .q4_K, .q5_K, .q4_1] {
            let plain = QuantTestMatrix(dtype: dtype, rows: 45, cols: k, seed: 41)
            let tiles = UnpackedTiles(packing: plain.matrix, pool: ThreadPool(threads: 2))
            XCTAssertNotNil(tiles.matrix.slicingRows(16..<45).tiles)
            XCTAssertNil(tiles.matrix.slicingRows(3..<40).tiles)
            for m in [1, 3, 9, 21] {
                let x = rng.floats(m * k)
                for range in [0..<45, 16..<45, 32..<40, 3..<40] {
                    let inPlace = runQuantizedGemm(
                        x: x, m: m, weight: plain.matrix.slicingRows(range), threads: 2, kernel: .avx512VNNI)
                    let tiled = runQuantizedGemm(
                        x: x, m: m, weight: tiles.matrix.slicingRows(range), threads: 2, kernel: .avx512VNNI)
                    XCTAssertEqual(tiled, inPlace, "\(dtype) m=\(m) rows \(range)")
                }
            }
            withExtendedLifetime(tiles) {}
        }
    }

    /// Three products of one activation matrix in one call (q/k/v, gate/up), of different block types and row counts
    /// that are not multiples of the 16-row tile, equal three separate calls exactly (the same quantized activations,
    /// each row computed alone), for the streaming (B ≤ 2) and the tile kernel.
    func testSharedActivationProducts() {
        let k = 512
        let mats = [
            QuantTestMatrix(dtype: .q4_0, rows: 37, cols: k, seed: 21), QuantTestMatrix(dtype: .q6_K, rows: 9, cols: k, seed: 22),
            QuantTestMatrix(dtype: .q8_0, rows: 16, cols: k, seed: 23), QuantTestMatrix(dtype: .q4_0, rows: 9, cols: k, seed: 24),
        ]
        var rng = SeededRandom(5)
        for kernel in Self.kernels {
            for m in [1, 2, 5] {
                for threads in [1, 2] {
                    let x = rng.floats(m * k)
                    let separate = mats.map { runQuantizedGemm(x: x, m: m, weight: $0.matrix, threads: threads, kernel: kernel) }
                    var out0 = [Float](repeating: .nan, count: m * 37), out1 = [Float](repeating: .nan, count: m * 9)
                    var out2 = [Float](repeating: .nan, count: m * 16)
                    let pool = ThreadPool(threads: threads)
                    x.withUnsafeBufferPointer { xp in
                        out0.withUnsafeMutableBufferPointer { o0 in
                            out1.withUnsafeMutableBufferPointer { o1 in
                                out2.withUnsafeMutableBufferPointer { o2 in
                                    QuantizedGemm.run(
                                        x: xp.baseAddress!, m: m, .init(weight: mats[0].matrix, out: o0.baseAddress!),
                                        .init(weight: mats[1].matrix, out: o1.baseAddress!),
                                        .init(weight: mats[2].matrix, out: o2.baseAddress!), workspace: AlignedBuffer<Float>(),
                                        pool: pool, kernel: kernel)
                                }
                            }
                        }
                    }
                    let outs = [out0, out1, out2]
                    for i in 0..<3 { XCTAssertEqual(outs[i], separate[i], "matrix \(i) m=\(m) threads=\(threads) \(kernel)") }
                    // Two products (gate/up), of one block type: at m ≤ 2 they share one batch-1 plan.
                    var two = [Float](repeating: .nan, count: m * 37), second = [Float](repeating: .nan, count: m * 9)
                    x.withUnsafeBufferPointer { xp in
                        two.withUnsafeMutableBufferPointer { o0 in
                            second.withUnsafeMutableBufferPointer { o1 in
                                QuantizedGemm.run(
                                    x: xp.baseAddress!, m: m, .init(weight: mats[0].matrix, out: o0.baseAddress!),
                                    .init(weight: mats[3].matrix, out: o1.baseAddress!), workspace: AlignedBuffer<Float>(),
                                    pool: pool, kernel: kernel)
                            }
                        }
                    }
                    XCTAssertEqual(two, separate[0], "pair m=\(m)")
                    XCTAssertEqual(second, separate[3], "pair m=\(m)")
                }
            }
        }
        withExtendedLifetime(mats) {}
    }

    /// One workspace reused across shapes that grow and shrink gives the same results as fresh ones.
    /// The batch-1 kernels load a whole 64-byte vector where a row has that many bytes left and a masked one near the
    /// row's end: a matrix that ends exactly at an unreadable page is computed without touching it (a read past the
    /// end would kill the test), with the same result as the matrix in ordinary memory.
    func testBatchOneReadsStopAtTheMatrixEnd() throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        for dtype in allQuantTypes {
            for k in [dtype.blockSize, 3 * dtype.blockSize, 7 * dtype.blockSize, 28 * 32, 29 * 32] where k % dtype.blockSize == 0 {
                let rows = 5
                let stored = QuantTestMatrix(dtype: dtype, rows: rows, cols: k, seed: UInt64(k))
                let bytes = stored.matrix.byteCount
                let mapped = (bytes + page - 1) / page * page
                let region = try XCTUnwrap(mmap(nil, mapped + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
                XCTAssertNotEqual(region, MAP_FAILED)
                defer { munmap(region, mapped + page) }
                XCTAssertEqual(mprotect(region + mapped, page, PROT_NONE), 0)
                let base = region + (mapped - bytes)  // the last byte of the matrix is the last readable byte
                base.copyMemory(from: stored.matrix.base, byteCount: bytes)
                let guarded = WeightMatrix(base: UnsafeRawPointer(base), rows: rows, cols: k, dtype: dtype)
                var rng = SeededRandom(7)
                let x = (0..<k).map { _ in rng.next() }
                for kernel in Self.kernels {
                    let got = runQuantizedGemm(x: x, m: 1, weight: guarded, threads: 1, kernel: kernel)
                    let want = runQuantizedGemm(x: x, m: 1, weight: stored.matrix, threads: 1, kernel: kernel)
                    XCTAssertEqual(got, want, "\(dtype) k=\(k) \(kernel)")
                }
            }
        }
    }

    func testWorkspaceReuse() {
        let ws = AlignedBuffer<Float>()
        let stored = QuantTestMatrix(dtype: .q8_0, rows: 9, cols: 320, seed: 7)
        let w = stored.matrix
        var rng = SeededRandom(3)
        for m in [16, 1, 64, 3] {
            let x = rng.floats(m * 320)
            let reused = runQuantizedGemm(x: x, m: m, weight: w, threads: 2, kernel: QuantizedGemm.bestKernel, workspace: ws)
            let fresh = runQuantizedGemm(x: x, m: m, weight: w, threads: 2, kernel: QuantizedGemm.bestKernel)
            XCTAssertEqual(reused, fresh, "m=\(m)")
        }
        withExtendedLifetime(stored) {}
    }

    /// The activation quantizer in C equals its Swift twin (identical int8 codes, f16 scales and Q8_1 sums); the twin
    /// scales by 127 / max|x| and rounds ties to even, as ggml does (checked on hand-picked values).
    func testActivationQuantizationMatchesTwin() {
        var rng = SeededRandom(11)
        let (m, k) = (3, 96)
        var x = rng.floats(m * k)
        for i in 32..<64 { x[i] = 0 }  // an all-zero block: d = 0, q = 0
        // Block 2 of row 0: max|x| = 127, so x · (127 / max|x|) = x: halves are ties, rounded to even (ggml's
        // _mm256_round_ps(_MM_ROUND_NEAREST)); the scale 1.0 is exact in f16, a tiny one (block 0 of row 1) is not.
        for i in 64..<96 { x[i] = Float(i - 80) + 0.5 }
        x[64] = 127
        for i in 96..<128 { x[i] *= 1e-3 }  // an f16-subnormal scale
        let (q, d, s1) = ReferenceKernels.quantizeActivationsQ8(x: x, m: m, k: k)
        XCTAssertEqual(Array(q[65..<69]), [-14, -14, -12, -12])  // -14.5, -13.5, -12.5, -11.5
        XCTAssertEqual(q[80], 0)  // 0.5
        XCTAssertEqual(q[81], 2)  // 1.5
        XCTAssertEqual(d[2], 1)
        XCTAssertEqual(d[1], 0)
        XCTAssertNotEqual(d[3], (0..<32).map { abs(x[96 + $0]) }.max()! / 127)  // rounded to f16
        let kp = 128
        var xq = [Int8](repeating: 1, count: m * kp)
        var xd = [Float](repeating: 1, count: m * kp / 32), xs32 = xd, xs1 = xd
        var xs16 = [Float](repeating: 1, count: m * kp / 16)
        var xneg = [Int32](repeating: 1, count: 2 * m * kp / 32 + m * kp / 16)
        pagodaQuantizeActivations(x, m: m, k: k, kp: kp, &xq, &xd, &xs16, &xs32, &xs1, &xneg)
        for r in 0..<m {
            for b in 0..<(kp / 32) {  // the offsets' integer block sums; zero in the padding
                let sum = b < k / 32 ? (0..<32).reduce(0) { $0 + Int(q[r * k + 32 * b + $1]) } : 0
                XCTAssertEqual(xneg[r * kp / 32 + b], Int32(-8 * sum))
                XCTAssertEqual(xneg[(m + r) * kp / 32 + b], Int32(-128 * sum))
                for h in 0..<2 {
                    let half = b < k / 32 ? (0..<16).reduce(0) { $0 + Int(q[r * k + 32 * b + 16 * h + $1]) } : 0
                    XCTAssertEqual(xneg[2 * m * kp / 32 + r * kp / 16 + 2 * b + h], Int32(-32 * half))
                }
            }
            for c in 0..<k { XCTAssertEqual(xq[r * kp + c], q[r * k + c], "r=\(r) c=\(c)") }
            for c in k..<kp { XCTAssertEqual(xq[r * kp + c], 0) }
            for b in 0..<(k / 32) {
                let scale = d[r * (k / 32) + b]
                XCTAssertEqual(xd[r * kp / 32 + b], scale)
                let half0 = (0..<16).reduce(0) { $0 + Int(q[r * k + 32 * b + $1]) }
                let half1 = (16..<32).reduce(0) { $0 + Int(q[r * k + 32 * b + $1]) }
                XCTAssertEqual(xs16[r * kp / 16 + 2 * b], scale * Float(half0))
                XCTAssertEqual(xs16[r * kp / 16 + 2 * b + 1], scale * Float(half1))
                XCTAssertEqual(xs32[r * kp / 32 + b], scale * Float(half0 + half1))
                XCTAssertEqual(xs1[r * kp / 32 + b], s1[r * (k / 32) + b])
            }
        }
    }
}

/// `pagoda_quantize_activations_q8` on Swift arrays.
func pagodaQuantizeActivations(
    _ x: [Float], m: Int, k: Int, kp: Int, _ xq: inout [Int8], _ xd: inout [Float], _ xs16: inout [Float],
    _ xs32: inout [Float], _ xs1: inout [Float], _ xneg: inout [Int32]
) {
    pagoda_quantize_activations_q8(x, Int64(k), Int64(m), 0, Int64(m), Int64(k), Int64(kp), &xq, &xd, &xs16, &xs32, &xs1, &xneg)
}
