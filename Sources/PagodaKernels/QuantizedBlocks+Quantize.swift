/// Float → Q8_0 / Q4_0 block quantization (`--quantization q8_0|q4_0` of a safetensors model at load), with
/// ggml's reference rounding so a Pagoda-quantized matrix equals llama.cpp's quantization of the same floats.
extension QuantizedBlocks {
    /// The types `quantize` can produce.
    public static let quantizableTypes: [WeightDType] = [.q8_0, .q4_0]

    /// Quantizes `count` floats (a multiple of 32) into `count / 32` blocks of `type` at `out`.
    ///
    /// Q8_0: d = max|x| / 127, q = round-half-away(x / d); |x − w| ≤ d/2 plus the f16 rounding of d (≤ 127·|d − d16|).
    /// Q4_0: the element of largest magnitude m sets d = m / −8 (so m itself maps exactly to q = 0),
    /// q = min(15, ⌊x/d + 8.5⌋); |x − w| ≤ |d|/2 except at q = 15 (the clamp, values near −m: ≤ |d|), plus the f16
    /// rounding of d (≤ 8·|d − d16|).
    public static func quantize(
        _ type: WeightDType, _ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutableRawPointer
    ) {
        precondition(count % 32 == 0, "\(count) floats are not whole blocks of 32")
        for b in 0..<(count / 32) {
            let src = x + b * 32
            let dst = out + b * type.blockBytes
            switch type {
            case .q8_0:
                var amax: Float = 0
                for i in 0..<32 { amax = max(amax, abs(src[i])) }
                let d = amax / 127
                let id: Float = d != 0 ? 1 / d : 0
                dst.storeBytes(of: floatToHalf(d).littleEndian, toByteOffset: 0, as: UInt16.self)
                for i in 0..<32 {
                    dst.storeBytes(of: Int8((src[i] * id).rounded()), toByteOffset: 2 + i, as: Int8.self)
                }
            case .q4_0:
                var amax: Float = 0
                var signedMax: Float = 0
                for i in 0..<32 where abs(src[i]) > amax {
                    amax = abs(src[i])
                    signedMax = src[i]
                }
                let d = signedMax / -8
                let id: Float = d != 0 ? 1 / d : 0
                dst.storeBytes(of: floatToHalf(d).littleEndian, toByteOffset: 0, as: UInt16.self)
                for i in 0..<16 {
                    let lo = min(15, Int(src[i] * id + 8.5))
                    let hi = min(15, Int(src[i + 16] * id + 8.5))
                    dst.storeBytes(of: UInt8(lo | hi << 4), toByteOffset: 2 + i, as: UInt8.self)
                }
            default:
                preconditionFailure("quantizing to \(type) is not supported (supported: q8_0, q4_0)")
            }
        }
    }
}

/// A block-quantized copy of a float (bf16/f32) weight matrix, owned: what `--quantization` builds at load.
/// The float source may be unmapped afterwards; `matrix` points into this object, which must outlive it.
public final class QuantizedWeights: @unchecked Sendable {
    public let matrix: WeightMatrix
    private let storage: UnsafeMutableRawPointer

    /// Quantizes `source` ([rows, cols], cols a multiple of 32) to `type` (`QuantizedBlocks.quantizableTypes`),
    /// rows spread over `pool`.
    public init(quantizing source: WeightMatrix, to type: WeightDType, pool: ThreadPool? = nil) {
        precondition(QuantizedBlocks.quantizableTypes.contains(type), "cannot quantize to \(type)")
        precondition(!source.dtype.isQuantized, "source is already quantized")
        precondition(source.cols % 32 == 0, "\(source.cols) columns are not whole blocks of 32")
        let rowBytes = type.bytes(elements: source.cols)
        storage = UnsafeMutableRawPointer.allocate(byteCount: max(1, source.rows * rowBytes), alignment: 64)
        matrix = WeightMatrix(base: UnsafeRawPointer(storage), rows: source.rows, cols: source.cols, dtype: type)
        let tasks = min(source.rows, max(1, (pool?.threads ?? 1) * 4))
        let rowsPerTask = tasks == 0 ? 0 : (source.rows + tasks - 1) / tasks
        let body: (Int) -> Void = { [storage] t in
            let row = UnsafeMutablePointer<Float>.allocate(capacity: source.cols)
            defer { row.deallocate() }
            for r in (t * rowsPerTask)..<min(source.rows, (t + 1) * rowsPerTask) {
                source.copyRow(r, to: row)
                QuantizedBlocks.quantize(type, row, count: source.cols, into: storage + r * rowBytes)
            }
        }
        if let pool { pool.parallelFor(tasks, body) } else { for t in 0..<tasks { body(t) } }
    }

    deinit { storage.deallocate() }
}
