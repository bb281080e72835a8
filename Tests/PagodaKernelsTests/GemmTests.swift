import XCTest
@testable import PagodaKernels

/// The tiled GEMM against its naive twin. Tolerance: 1e-4 relative to the row's Σ|x·w| (float32
/// accumulation in a different order than the Double oracle; observed ~1e-6).
final class GemmTests: XCTestCase {
    /// `precision: .bfloat16` is compared with the oracle on the activations rounded to bf16, which is what that
    /// path multiplies (when it is taken: bf16 weights, k a multiple of 32, a CPU with AVX512-BF16).
    func check(
        m: Int, n: Int, k: Int, dtype: WeightDType, threads: Int, columnSlice: Range<Int>? = nil,
        precision: GemmPrecision = .float32
    ) {
        var rng = SeededRandom(UInt64(m * 1000 + n * 10 + k))
        let fullCols = k + (columnSlice == nil ? 0 : 7)
        let w = TestWeights(rows: n, cols: fullCols, dtype: dtype, values: rng.floats(n * fullCols))
        let matrix = columnSlice.map { w.matrix.slicingColumns($0) } ?? w.matrix
        let x = rng.floats(m * k)
        let roundsActivations = precision == .bfloat16 && dtype == .bf16 && k % 32 == 0 && Gemm.hasAVX512BF16
        let ref = ReferenceKernels.gemm(
            x: roundsActivations ? x.map { BFloat16.toFloat(BFloat16.fromFloat($0)) } : x, m: m, weight: matrix)
        var out = [Float](repeating: .nan, count: m * n)
        let pool = ThreadPool(threads: threads)
        let ws = AlignedBuffer<Float>()
        x.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBufferPointer { op in
                Gemm.run(
                    x: xp.baseAddress!, m: m, weight: matrix, out: op.baseAddress!, workspace: ws, pool: pool,
                    precision: precision)
            }
        }
        let tol = Float(k) * 1e-5 + 1e-5
        XCTAssertLessThan(maxAbsDiff(out, ref), tol, "m=\(m) n=\(n) k=\(k) \(dtype) threads=\(threads) \(precision)")
        XCTAssertFalse(out.contains { $0.isNaN })
    }

    func testBF16Shapes() {
        for (m, n, k) in [(1, 1, 32), (1, 7, 64), (1, 9, 96), (1, 6, 200), (2, 5, 64), (3, 9, 96), (4, 8, 32), (8, 36, 128), (5, 13, 40), (17, 33, 200), (70, 12, 64)] {
            check(m: m, n: n, k: k, dtype: .bf16, threads: 2)
        }
    }

    func testF32Shapes() {
        for (m, n, k) in [(1, 5, 32), (1, 3, 72), (4, 8, 48), (9, 17, 100), (66, 4, 64)] {
            check(m: m, n: n, k: k, dtype: .f32, threads: 2)
        }
    }

    func testColumnSliceAndSingleThread() {
        check(m: 6, n: 10, k: 64, dtype: .bf16, threads: 1, columnSlice: 3..<67)
        check(m: 1, n: 10, k: 96, dtype: .bf16, threads: 1, columnSlice: 5..<101)
        check(m: 2, n: 10, k: 32, dtype: .f32, threads: 2, columnSlice: 7..<39)
    }

    func testBF16ActivationPath() throws {
        try XCTSkipUnless(Gemm.hasAVX512BF16, "this CPU has no AVX512-BF16: precision .bfloat16 falls back to float32")
        for (m, n, k) in [(1, 9, 96), (1, 6, 64), (2, 5, 64), (4, 8, 32), (7, 13, 128), (70, 12, 64), (3, 5, 40)] {
            check(m: m, n: n, k: k, dtype: .bf16, threads: 2, precision: .bfloat16)
        }
        check(m: 5, n: 10, k: 64, dtype: .bf16, threads: 1, columnSlice: 3..<67, precision: .bfloat16)
        check(m: 3, n: 7, k: 64, dtype: .f32, threads: 2, precision: .bfloat16)  // f32 weights: float32 path
    }

    func testBF16RoundTrip() {
        XCTAssertEqual(BFloat16.toFloat(BFloat16.fromFloat(1.5)), 1.5)
        XCTAssertEqual(BFloat16.fromFloat(1.0 + 1.0 / 256), 0x3F80)  // ties to even
        XCTAssertEqual(BFloat16.toFloat(BFloat16.fromFloat(-3.0)), -3.0)
    }
}
