/// ggml's block-quantized weight formats, byte for byte, so a GGUF tensor is used where it lies (memory-mapped,
/// never widened to a float copy). A row of `cols` weights is `cols / blockSize` consecutive blocks; all
/// multi-byte fields are little-endian; `f16` is IEEE binary16. This file is the specification: `dequantize`
/// decodes one weight by the tables below, and the fast kernels (`QuantizedGemm`, `gemm_quant.c`) are tested
/// against it.
///
/// **Q8_0** — 32 weights, 34 bytes; w[i] = d · qs[i]
/// | offset | size | field | meaning |
/// | --- | --- | --- | --- |
/// | 0 | 2 | d | f16 scale |
/// | 2 | 32 | qs | int8 quants, weight i in qs[i] |
///
/// **Q4_0** — 32 weights, 18 bytes; w[i] = (q[i] − 8) · d
/// | offset | size | field | meaning |
/// | --- | --- | --- | --- |
/// | 0 | 2 | d | f16 scale |
/// | 2 | 16 | qs | 4-bit quants: weight i < 16 is the low nibble of qs[i], weight i + 16 its high nibble |
///
/// **Q4_1** — 32 weights, 20 bytes; w[i] = q[i] · d + m
/// | offset | size | field | meaning |
/// | --- | --- | --- | --- |
/// | 0 | 2 | d | f16 scale |
/// | 2 | 2 | m | f16 minimum |
/// | 4 | 16 | qs | nibbles as in Q4_0 |
///
/// **Q4_K** — 256 weights, 144 bytes: 8 sub-blocks j of 32 weights, each with a 6-bit scale sc[j] and min mn[j];
/// w = d · sc[j] · q − dmin · mn[j]
/// | offset | size | field | meaning |
/// | --- | --- | --- | --- |
/// | 0 | 2 | d | f16 super-block scale of the scales |
/// | 2 | 2 | dmin | f16 super-block scale of the mins |
/// | 4 | 12 | scales | sc, mn packed (below) |
/// | 16 | 128 | qs | 4-bit quants: 64-weight chunk c (0..3) is qs[32c ..< 32c+32]; weight 64c + l (l < 32) is the low nibble of qs[32c + l] (sub-block 2c), weight 64c + 32 + l the high nibble (sub-block 2c + 1) |
///
/// `scales` packing (12 bytes, 8 × (6 + 6) bits), for j < 4: sc[j] = scales[j] & 63, mn[j] = scales[j + 4] & 63;
/// for j ≥ 4: sc[j] = (scales[j + 4] & 15) | (scales[j − 4] >> 6) << 4, mn[j] = (scales[j + 4] >> 4) |
/// (scales[j] >> 6) << 4 — the top two bits of bytes 0–7 carry the high bits of sub-blocks 4–7.
///
/// **Q5_K** — 256 weights, 176 bytes; as Q4_K plus a fifth bit: q = nibble + 16 · ((qh[l] >> j) & 1) for weight
/// l (mod 32) of sub-block j; w = d · sc[j] · q − dmin · mn[j]
/// | offset | size | field | meaning |
/// | --- | --- | --- | --- |
/// | 0 | 2 | d | f16 |
/// | 2 | 2 | dmin | f16 |
/// | 4 | 12 | scales | packed as Q4_K |
/// | 16 | 32 | qh | bit j of qh[l]: high bit of weight 32j + l |
/// | 48 | 128 | qs | low nibbles, arranged as Q4_K's qs |
///
/// **Q6_K** — 256 weights, 210 bytes: 16 sub-blocks of 16 weights with int8 scales; w = d · scales[s] · (q − 32),
/// q a 6-bit value. Weight i: half h = i / 128, l = i % 128, group g = l / 32, e = l % 32:
/// low 4 bits from ql[64h + 32(g & 1) + e] (low nibble for g < 2, high for g ≥ 2), high 2 bits
/// (qh[32h + e] >> 2g) & 3, scale index s = 8h + 2g + e / 16.
/// | offset | size | field | meaning |
/// | --- | --- | --- | --- |
/// | 0 | 128 | ql | low 4 bits |
/// | 128 | 64 | qh | high 2 bits |
/// | 192 | 16 | scales | int8 sub-block scales |
/// | 208 | 2 | d | f16 super-block scale |
public enum QuantizedBlocks {
    /// Weight `index` (0 ..< type.blockSize) of the block at `block`. The specification of each layout; slow.
    public static func dequantize(_ type: WeightDType, block p: UnsafeRawPointer, index i: Int) -> Float {
        func u8(_ o: Int) -> Int { Int(p.load(fromByteOffset: o, as: UInt8.self)) }
        func f16(_ o: Int) -> Float { halfToFloat(UInt16(u8(o)) | UInt16(u8(o + 1)) << 8) }
        switch type {
        case .q8_0:
            return f16(0) * Float(Int8(truncatingIfNeeded: u8(2 + i)))
        case .q4_0:
            let q = i < 16 ? u8(2 + i) & 15 : u8(2 + i - 16) >> 4
            return Float(q - 8) * f16(0)
        case .q4_1:
            let q = i < 16 ? u8(4 + i) & 15 : u8(4 + i - 16) >> 4
            return Float(q) * f16(0) + f16(2)
        case .q4_K, .q5_K:
            let j = i / 32, l = i % 32
            let (sc, mn) = kScaleMin(j) { u8(4 + $0) }
            let qsOffset = type == .q5_K ? 48 : 16
            var q = (u8(qsOffset + (j / 2) * 32 + l) >> ((j & 1) * 4)) & 15
            if type == .q5_K { q += ((u8(16 + l) >> j) & 1) << 4 }
            return f16(0) * Float(sc) * Float(q) - f16(2) * Float(mn)
        case .q6_K:
            let h = i / 128, g = (i % 128) / 32, e = i % 32
            let low = (u8(64 * h + 32 * (g & 1) + e) >> ((g >> 1) * 4)) & 15
            let high = (u8(128 + 32 * h + e) >> (2 * g)) & 3
            let scale = Int8(truncatingIfNeeded: u8(192 + 8 * h + 2 * g + e / 16))
            return f16(208) * Float(scale) * Float((low | high << 4) - 32)
        case .bf16, .f32:
            preconditionFailure("\(type) is not block-quantized")
        }
    }

    /// The 6-bit scale and min of sub-block j (0..<8) of a Q4_K/Q5_K `scales` field read by `byte`.
    static func kScaleMin(_ j: Int, _ byte: (Int) -> Int) -> (Int, Int) {
        if j < 4 { return (byte(j) & 63, byte(j + 4) & 63) }
        return ((byte(j + 4) & 15) | (byte(j - 4) >> 6) << 4, (byte(j + 4) >> 4) | (byte(j) >> 6) << 4)
    }

    /// Dequantizes the first `count` weights (a multiple of `type.blockSize`) of the row at `row` into `out`.
    public static func dequantizeRow(
        _ type: WeightDType, _ row: UnsafeRawPointer, count: Int, into out: UnsafeMutablePointer<Float>
    ) {
        let bs = type.blockSize
        precondition(count % bs == 0, "\(count) weights are not whole \(type) blocks")
        for b in 0..<(count / bs) {
            let block = row + b * type.blockBytes
            for i in 0..<bs { out[b * bs + i] = dequantize(type, block: block, index: i) }
        }
    }

    /// IEEE binary16 bits → Float.
    @inline(__always)
    public static func halfToFloat(_ bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }

    /// Float → IEEE binary16 bits, round to nearest even (as ggml's FP32→FP16 conversion).
    @inline(__always)
    public static func floatToHalf(_ x: Float) -> UInt16 { Float16(x).bitPattern }
}
