import Foundation
import XCTest
@testable import PagodaKernels

/// Timing of `QuantizedGemm`, not a correctness test: runs only with PAGODA_QUANT_BENCH=1, e.g.
///   PAGODA_QUANT_BENCH=1 PAGODA_QUANT_BENCH_THREADS=1 swift test --skip-build --filter QuantizedGemmBenchmark
/// Shape N × K = 4864 × 896 (the 0.5B model's MLP up projection; 2.6 MB at Q4_0, out of L2), B = 1, 16, 64;
/// prints ms per call, GFLOP/s (2·B·N·K) and the weight bytes streamed per second.
final class QuantizedGemmBenchmark: XCTestCase {
    func testThroughput() throws {
        let env = ProcessInfo.processInfo.environment
        try XCTSkipUnless(env["PAGODA_QUANT_BENCH"] == "1", "set PAGODA_QUANT_BENCH=1 to time the quantized GEMM")
        let threads = Int(env["PAGODA_QUANT_BENCH_THREADS"] ?? "") ?? 1
        let (n, k) = (Int(env["PAGODA_QUANT_BENCH_N"] ?? "") ?? 4864, Int(env["PAGODA_QUANT_BENCH_K"] ?? "") ?? 896)
        let pool = ThreadPool(threads: threads)
        let ws = AlignedBuffer<Float>()
        let kernels: [QuantizedGemm.Kernel] = QuantizedGemm.bestKernel == .avx512VNNI ? [.avx512VNNI, .portable] : [.portable]
        // Control: the f32 GEMM on the same shape (CPU-FACTS: ~111 GFLOP/s on an idle core), to read the figures
        // below against the machine's state at the time.
        for m in [1, 16, 64] {
            var rng = SeededRandom(4)
            let w = TestWeights(rows: n, cols: k, dtype: .f32, values: rng.floats(n * k))
            let x = rng.floats(m * k)
            var out = [Float](repeating: 0, count: m * n)
            var best = Double.infinity
            for _ in 0..<5 {
                let t0 = DispatchTime.now().uptimeNanoseconds
                Gemm.run(x: x, m: m, weight: w.matrix, out: &out, workspace: ws, pool: pool)
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
            print(String(format: "quant-bench control f32 B=%d N=%d K=%d threads=%d: %.3f ms, %.1f GFLOP/s", m, n, k,
                         threads, best * 1000, 2 * Double(m * n * k) / best / 1e9))
        }
        for dtype in [WeightDType.q8_0, .q4_0, .q4_1, .q4_K, .q6_K] where k % dtype.blockSize == 0 {
            let w = QuantTestMatrix(dtype: dtype, rows: n, cols: k, seed: 1)
            for kernel in kernels {
                for m in [1, 16, 64] {
                    var rng = SeededRandom(2)
                    let x = rng.floats(m * k)
                    var out = [Float](repeating: 0, count: m * n)
                    var best = Double.infinity
                    x.withUnsafeBufferPointer { xp in
                        out.withUnsafeMutableBufferPointer { op in
                            // About 0.2 s per timed trial, from one untimed call.
                            let t = DispatchTime.now().uptimeNanoseconds
                            QuantizedGemm.run(
                                x: xp.baseAddress!, m: m, weight: w.matrix, out: op.baseAddress!, workspace: ws,
                                pool: pool, kernel: kernel)
                            let once = Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9
                            let reps = max(3, min(1000, Int(0.2 / max(once, 1e-6))))
                            for trial in 0..<3 {
                                let t0 = DispatchTime.now().uptimeNanoseconds
                                for _ in 0..<(trial == 0 ? 2 : reps) {
                                    QuantizedGemm.run(
                                        x: xp.baseAddress!, m: m, weight: w.matrix, out: op.baseAddress!, workspace: ws,
                                        pool: pool, kernel: kernel)
                                }
                                if trial > 0 {
                                    best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 / Double(reps))
                                }
                            }
                        }
                    }
                    print(String(
                        format: "quant-bench %@ %@ B=%d N=%d K=%d threads=%d: %.3f ms, %.1f GFLOP/s, weights %.1f GB/s",
                        "\(dtype)", "\(kernel)", m, n, k, threads, best * 1000, 2 * Double(m * n * k) / best / 1e9,
                        Double(w.matrix.byteCount) / best / 1e9))
                }
            }
        }
    }
}
