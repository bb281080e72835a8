import XCTest
@testable import PagodaKernels

/// The byte layouts themselves: blocks written field by field from the tables in `QuantizedBlocks` (not by the
/// code under test), with known weights. Checked through the specification (`dequantize`, exact) and through the
/// fast GEMM with one-hot activations (x = e_c gives y[n] = w[n, c] up to the int8 step of x: 1 · (1 ± 2⁻²³)).
final class QuantizedBlocksTests: XCTestCase {
    /// Builds one block of `dtype`; returns its bytes and the weights it must decode to.
    func handMadeBlock(_ dtype: WeightDType) -> (bytes: [UInt8], weights: [Float]) {
        var b = [UInt8](repeating: 0, count: dtype.blockBytes)
        func f16(_ offset: Int, _ v: Float) {
            let h = QuantizedBlocks.floatToHalf(v)
            b[offset] = UInt8(h & 0xFF)
            b[offset + 1] = UInt8(h >> 8)
        }
        var w = [Float](repeating: 0, count: dtype.blockSize)
        switch dtype {
        case .q8_0:
            f16(0, 0.5)
            for i in 0..<32 {
                b[2 + i] = UInt8(bitPattern: Int8(i - 16))
                w[i] = 0.5 * Float(i - 16)
            }
        case .q4_0, .q4_1:
            let q41 = dtype == .q4_1
            f16(0, q41 ? 0.5 : 0.25)
            if q41 { f16(2, -1) }
            for i in 0..<16 {
                b[(q41 ? 4 : 2) + i] = UInt8(i | (15 - i) << 4)
                w[i] = q41 ? Float(i) * 0.5 - 1 : Float(i - 8) * 0.25
                w[i + 16] = q41 ? Float(15 - i) * 0.5 - 1 : Float(7 - i) * 0.25
            }
        case .q4_K, .q5_K:
            let q5 = dtype == .q5_K
            f16(0, 1)
            f16(2, 0.5)
            let sc = [1, 2, 3, 4, 33, 40, 50, 63], mn = [0, 1, 2, 3, 17, 20, 48, 5]
            for j in 0..<4 {
                b[4 + j] = UInt8(sc[j] | (sc[j + 4] >> 4) << 6)
                b[8 + j] = UInt8(mn[j] | (mn[j + 4] >> 4) << 6)
                b[12 + j] = UInt8((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4)
            }
            let qs = q5 ? 48 : 16
            for c in 0..<4 {
                for l in 0..<32 {
                    let lo = (l + c) & 15, hi = (3 * l + c) & 15
                    b[qs + 32 * c + l] = UInt8(lo | hi << 4)
                    var qLo = lo, qHi = hi
                    if q5 {
                        let qh = (l * 37) & 0xFF
                        b[16 + l] = UInt8(qh)
                        qLo += ((qh >> (2 * c)) & 1) * 16
                        qHi += ((qh >> (2 * c + 1)) & 1) * 16
                    }
                    w[64 * c + l] = Float(sc[2 * c] * qLo) - 0.5 * Float(mn[2 * c])
                    w[64 * c + 32 + l] = Float(sc[2 * c + 1] * qHi) - 0.5 * Float(mn[2 * c + 1])
                }
            }
        case .q6_K:
            f16(208, 0.5)
            for s in 0..<16 { b[192 + s] = UInt8(bitPattern: Int8(s - 8)) }
            for i in 0..<256 {
                let q = (i * 7) % 64
                let h = i / 128, l = i % 128, g = l / 32, e = l % 32
                b[64 * h + 32 * (g & 1) + e] |= UInt8((q & 15) << (4 * (g >> 1)))
                b[128 + 32 * h + e] |= UInt8((q >> 4) << (2 * g))
                w[i] = 0.5 * Float(8 * h + 2 * g + e / 16 - 8) * Float(q - 32)
            }
        default:
            preconditionFailure()
        }
        return (b, w)
    }

    func testHandMadeBlocksDecodeBySpecification() {
        for dtype in allQuantTypes {
            let (bytes, expected) = handMadeBlock(dtype)
            bytes.withUnsafeBytes { p in
                var out = [Float](repeating: .nan, count: dtype.blockSize)
                out.withUnsafeMutableBufferPointer {
                    QuantizedBlocks.dequantizeRow(dtype, p.baseAddress!, count: dtype.blockSize, into: $0.baseAddress!)
                }
                XCTAssertEqual(out, expected, "\(dtype)")
                let m = WeightMatrix(base: p.baseAddress!, rows: 1, cols: dtype.blockSize, dtype: dtype)
                XCTAssertEqual(m.element(0, 5), expected[5], "\(dtype)")
                var row = [Float](repeating: .nan, count: dtype.blockSize)
                row.withUnsafeMutableBufferPointer { m.copyRow(0, to: $0.baseAddress!) }
                XCTAssertEqual(row, expected, "\(dtype) copyRow")
            }
        }
    }

    /// The fast kernels read the same layout: a 3-row matrix (the hand-made block repeated) times the identity
    /// gives the weights back.
    func testHandMadeBlocksThroughFastKernels() {
        for dtype in allQuantTypes {
            let (bytes, expected) = handMadeBlock(dtype)
            let rows = 3
            let all = Array((0..<rows).map { _ in bytes }.joined())
            let k = dtype.blockSize
            var x = [Float](repeating: 0, count: k * k)
            for c in 0..<k { x[c * k + c] = 1 }
            for kernel in QuantizedGemmTests.kernels {
                all.withUnsafeBytes { p in
                    let m = WeightMatrix(base: p.baseAddress!, rows: rows, cols: k, dtype: dtype)
                    let out = runQuantizedGemm(x: x, m: k, weight: m, threads: 2, kernel: kernel)
                    // Offsets cancel in f32 (Q8_0: s·(q + 128) − 128·s), so the error scales with the block's range.
                    let range = expected.map(abs).max()! * 128
                    for c in 0..<k {
                        for r in 0..<rows {
                            XCTAssertEqual(
                                out[c * rows + r], expected[c], accuracy: range * 1e-6 + 1e-6,
                                "\(dtype) \(kernel) weight \(c) row \(r)")
                        }
                    }
                }
            }
        }
    }

    func testHalfConversions() {
        XCTAssertEqual(QuantizedBlocks.floatToHalf(1), 0x3C00)
        XCTAssertEqual(QuantizedBlocks.floatToHalf(-2), 0xC000)
        XCTAssertEqual(QuantizedBlocks.halfToFloat(0x0001), 5.9604645e-8)  // smallest subnormal
        XCTAssertEqual(QuantizedBlocks.halfToFloat(0x7BFF), 65504)
    }
}

/// Float → Q8_0 / Q4_0 quantizers: values on the grid round-trip exactly; random values stay within the
/// format's bound (stated on `QuantizedBlocks.quantize`).
final class QuantizeTests: XCTestCase {
    func roundTrip(_ dtype: WeightDType, _ x: [Float]) -> (weights: [Float], scales: [Float]) {
        let blocks = x.count / 32
        var bytes = [UInt8](repeating: 0, count: blocks * dtype.blockBytes)
        var out = [Float](repeating: .nan, count: x.count)
        bytes.withUnsafeMutableBytes { b in
            x.withUnsafeBufferPointer { QuantizedBlocks.quantize(dtype, $0.baseAddress!, count: x.count, into: b.baseAddress!) }
            out.withUnsafeMutableBufferPointer {
                QuantizedBlocks.dequantizeRow(dtype, UnsafeRawPointer(b.baseAddress!), count: x.count, into: $0.baseAddress!)
            }
        }
        let scales = (0..<blocks).map { i in
            QuantizedBlocks.halfToFloat(UInt16(bytes[i * dtype.blockBytes]) | UInt16(bytes[i * dtype.blockBytes + 1]) << 8)
        }
        return (out, scales)
    }

    func testGridValuesRoundTripExactly() {
        // Each Q8_0 block holds ±127 · 0.0625, so d = 0.0625 exactly and every code · 0.0625 is on the grid.
        let first: [Float] = (0..<32).map { (i: Int) -> Float in Float(i * 8 - 127) * 0.0625 }
        let second: [Float] = (0..<32).map { (i: Int) -> Float in Float(127 - i * 3) * 0.0625 }
        let q8 = first + second
        XCTAssertEqual(roundTrip(.q8_0, q8).weights, q8)
        // Q4_0: the largest magnitude is −2 = (0 − 8) · 0.25, so d = 0.25 and every (q − 8) · 0.25 is on the grid.
        let q4 = (0..<32).map { Float($0 % 16 - 8) * 0.25 }
        let (w, d) = roundTrip(.q4_0, q4)
        XCTAssertEqual(w, q4)
        XCTAssertEqual(d, [0.25])
    }

    func testRandomValuesWithinBound() {
        var rng = SeededRandom(99)
        let x = (0..<(32 * 64)).map { i in rng.next() * Float(1 + i / 256) }
        for dtype in QuantizedBlocks.quantizableTypes {
            let (w, d) = roundTrip(dtype, x)
            for b in 0..<64 {
                let scale = abs(d[b])
                for i in (b * 32)..<(b * 32 + 32) {
                    let err = abs(x[i] - w[i])
                    // Half a step, plus the f16 rounding of d (relative 2⁻¹¹) times the largest code;
                    // Q4_0's clamped code 15 (values near −max) may be a whole step off.
                    let code = Int((w[i] / d[b]).rounded()) + 8
                    let steps: Float = dtype == .q8_0 ? 0.5 + 127.0 / 2048 : (code == 15 ? 1 + 8.0 / 2048 : 0.5 + 8.0 / 2048)
                    XCTAssertLessThanOrEqual(err, scale * steps * 1.001 + 1e-7, "\(dtype) block \(b) element \(i)")
                }
            }
        }
    }

    /// `QuantizedWeights` from an f32 matrix equals quantizing each row on its own, and serves the GEMM.
    func testQuantizedWeightsFromFloatMatrix() {
        var rng = SeededRandom(5)
        let (rows, cols) = (7, 96)
        let values = rng.floats(rows * cols)
        let source = TestWeights(rows: rows, cols: cols, dtype: .f32, values: values)
        for dtype in QuantizedBlocks.quantizableTypes {
            let q = QuantizedWeights(quantizing: source.matrix, to: dtype, pool: ThreadPool(threads: 2))
            XCTAssertEqual(q.matrix.dtype, dtype)
            for r in 0..<rows {
                let (w, _) = roundTrip(dtype, Array(values[(r * cols)..<((r + 1) * cols)]))
                for c in 0..<cols { XCTAssertEqual(q.matrix.element(r, c), w[c], "\(dtype) r=\(r) c=\(c)") }
            }
            let x = rng.floats(2 * cols)
            let out = runQuantizedGemm(x: x, m: 2, weight: q.matrix, threads: 2, kernel: QuantizedGemm.bestKernel)
            let ref = ReferenceKernels.gemmQuantizedActivations(x: x, m: 2, weight: q.matrix)
            for i in 0..<out.count { XCTAssertEqual(out[i], ref.out[i], accuracy: 2e-5 * ref.magnitude[i] + 1e-5) }
        }
    }
}
