import XCTest
@testable import PagodaKernels

/// RMSNorm, RoPE, SiLU·mul, softmax, embedding lookup against their twins (tolerance 1e-5 abs on
/// O(1) values: float32 vs Double oracle).
final class ElementwiseKernelTests: XCTestCase {
    func testRMSNorm() {
        var rng = SeededRandom(1)
        let dim = 40, rows = 3
        let x = rng.floats(rows * dim), w = rng.floats(dim)
        var out = [Float](repeating: 0, count: rows * dim)
        RMSNorm.run(x: x, weight: w, out: &out, rows: rows, dim: dim, eps: 1e-6)
        XCTAssertLessThan(maxAbsDiff(out, ReferenceKernels.rmsNorm(x: x, weight: w, rows: rows, eps: 1e-6)), 1e-5)
    }

    func testRopeDefaultAndLlama3() {
        var rng = SeededRandom(2)
        for scaling in [RotaryEmbedding.Scaling.none,
                        .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192)] {
            let rope = RotaryEmbedding(headDim: 16, theta: 500000, scaling: scaling)
            let positions: [Int32] = [0, 5, 300]
            var cosT = [Float](repeating: 0, count: 3 * 8), sinT = cosT
            rope.tables(positions: positions, count: 3, cos: &cosT, sin: &sinT)
            let heads = 2
            let x = rng.floats(3 * heads * 16)
            var y = x
            rope.apply(&y, count: 3, ld: heads * 16, heads: heads, cos: cosT, sin: sinT)
            for t in 0..<3 {
                for h in 0..<heads {
                    let v = Array(x[(t * heads + h) * 16..<(t * heads + h + 1) * 16])
                    let ref = ReferenceKernels.rope(v, position: Int(positions[t]), invFreq: rope.invFreq)
                    XCTAssertLessThan(maxAbsDiff(Array(y[(t * heads + h) * 16..<(t * heads + h + 1) * 16]), ref), 1e-5)
                }
            }
        }
    }

    func testLlama3ScalingRescalesLowFrequenciesOnly() {
        let plain = RotaryEmbedding(headDim: 64, theta: 500000)
        let scaled = RotaryEmbedding(
            headDim: 64, theta: 500000, scaling: .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192))
        XCTAssertEqual(scaled.invFreq[0], plain.invFreq[0])  // high frequency (short wavelength) unchanged
        XCTAssertEqual(scaled.invFreq[31], plain.invFreq[31] / 8, accuracy: plain.invFreq[31] * 1e-6)  // low: /factor
    }

    /// GGUF's `rope_freqs.weight` divides each frequency: the divisors llama.cpp's converter writes for Llama 3
    /// scaling (unscaled ÷ scaled frequency) give back the frequencies of the config.json path.
    func testFrequencyFactorsReproduceLlama3Scaling() {
        let plain = RotaryEmbedding(headDim: 64, theta: 500000)
        let llama3 = RotaryEmbedding(
            headDim: 64, theta: 500000, scaling: .llama3(factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192))
        let factors = (0..<32).map { Float(Double(plain.invFreq[$0]) / Double(llama3.invFreq[$0])) }
        XCTAssertEqual(factors[0], 1)
        XCTAssertEqual(factors[31], 32, accuracy: 1e-4)
        XCTAssertTrue(factors.contains { $0 > 1 && $0 < 32 })  // the smooth band between
        let fromFactors = RotaryEmbedding(headDim: 64, theta: 500000, frequencyFactors: factors)
        for i in 0..<32 { XCTAssertEqual(fromFactors.invFreq[i], llama3.invFreq[i], accuracy: llama3.invFreq[i] * 2e-7, "i=\(i)") }
    }

    func testLinearScalingDividesEveryFrequency() {
        let plain = RotaryEmbedding(headDim: 64, theta: 10000)
        let scaled = RotaryEmbedding(headDim: 64, theta: 10000, scaling: .linear(factor: 4))
        for i in 0..<32 { XCTAssertEqual(scaled.invFreq[i], plain.invFreq[i] / 4, accuracy: plain.invFreq[i] * 1e-6) }
    }

    /// The vectorized exp of SwiGLU against Double over the whole float range a gate takes (and past it): relative
    /// error within a few float roundings (0 where e^−x overflows a float, as with expf), and NaN carried through.
    func testSiluMulMatchesDoubleOverTheRange() {
        var gate: [Float] = stride(from: -120.0, through: 120.0, by: 0.37).map { Float($0) }
        gate += [0, -0.0, 1e-30, -1e-30, 88.7, -88.7, 89, -104, Float.nan]
        let up = (0..<gate.count).map { Float(1 + $0 % 3) }
        var out = [Float](repeating: 0, count: gate.count)
        Elementwise.siluMul(gate: gate, up: up, out: &out, rows: 1, dim: gate.count)
        for i in 0..<gate.count - 1 {
            let x = Double(gate[i]), want = x / (1 + exp(-x)) * Double(up[i])
            XCTAssertLessThanOrEqual(abs(Double(out[i]) - want), 4e-7 * abs(want) + 1e-35, "silu(\(gate[i]))")
        }
        XCTAssertTrue(out[gate.count - 1].isNaN)
    }

    func testSiluMulAndSoftmax() {
        var rng = SeededRandom(3)
        let g = rng.floats(50).map { $0 * 6 }, u = rng.floats(50)
        var out = [Float](repeating: 0, count: 50)
        Elementwise.siluMul(gate: g, up: u, out: &out, rows: 2, dim: 25)
        XCTAssertLessThan(maxAbsDiff(out, ReferenceKernels.siluMul(gate: g, up: u)), 1e-5)
        var s = rng.floats(33).map { $0 * 20 }
        let ref = ReferenceKernels.softmax(s)
        Elementwise.softmax(&s, count: 33)
        XCTAssertLessThan(maxAbsDiff(s, ref), 1e-6)
    }

    func testEmbeddingLookupWithVocabShard() {
        var rng = SeededRandom(4)
        let table = TestWeights(rows: 6, cols: 4, dtype: .bf16, values: rng.floats(24))
        let shard = table.matrix.slicingRows(2..<4)
        let ids: [Int32] = [3, 0, 2]
        var out = [Float](repeating: .nan, count: 12)
        Elementwise.embeddingLookup(ids: ids, count: 3, table: shard, rowRange: 2..<4, out: &out)
        XCTAssertEqual(Array(out[0..<4]), (0..<4).map { table.matrix.element(3, $0) })
        XCTAssertEqual(Array(out[4..<8]), [0, 0, 0, 0])
        XCTAssertEqual(Array(out[8..<12]), (0..<4).map { table.matrix.element(2, $0) })
    }

    func testThreadPoolRunsEveryTaskOnce() {
        let pool = ThreadPool(threads: 3, cpus: [0])
        for n in [0, 1, 2, 7, 100] {
            let counts = UnsafeMutablePointer<Int>.allocate(capacity: max(n, 1))
            counts.initialize(repeating: 0, count: max(n, 1))
            for _ in 0..<20 { pool.parallelFor(n) { i in counts[i] += 1 } }
            for i in 0..<n { XCTAssertEqual(counts[i], 20) }
            counts.deallocate()
        }
    }
}
