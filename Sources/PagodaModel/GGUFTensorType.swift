/// A ggml tensor type as a GGUF tensor info names it (`ggml_type` in ggml.h), with its block layout.
///
/// Data of every type is a sequence of blocks along the innermost dimension (`ne[0]`, the row): a block
/// holds `blockSize` elements in `bytesPerBlock` bytes, so a row of `n` elements is `n / blockSize * bytesPerBlock`
/// bytes and `ne[0]` must be a multiple of `blockSize`. Float types are blocks of one element.
///
/// | id | name | elements / block | bytes / block | layout of one block |
/// | --- | --- | --- | --- | --- |
/// | 0 | F32 | 1 | 4 | IEEE float32 |
/// | 1 | F16 | 1 | 2 | IEEE float16 |
/// | 30 | BF16 | 1 | 2 | bfloat16 (the top half of a float32) |
/// | 8 | Q8_0 | 32 | 34 | f16 scale d, 32 × int8 q; x = d·q |
/// | 2 | Q4_0 | 32 | 18 | f16 scale d, 16 bytes of 4-bit q (low nibbles: elements 0–15, high: 16–31); x = d·(q − 8) |
/// | 3 | Q4_1 | 32 | 20 | f16 scale d, f16 minimum m, 16 bytes of 4-bit q as Q4_0; x = d·q + m |
/// | 12 | Q4_K | 256 | 144 | f16 d, f16 dmin, 12 bytes of 6-bit sub-block scales/mins, 128 bytes of 4-bit q |
/// | 13 | Q5_K | 256 | 176 | as Q4_K plus 32 bytes of fifth bits |
/// | 14 | Q6_K | 256 | 210 | 128 bytes low 4 bits, 64 bytes high 2 bits, 16 × int8 scales, f16 d |
///
/// Those nine are what Pagoda reads (`isSupported`); the other ids ggml defines are named here so an error
/// can say which type a file uses. Decoding the quantized blocks belongs to the kernels, not to this table.
public enum GGUFTensorType: UInt32, Sendable, CaseIterable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case iq2_xxs = 16, iq2_xs = 17, iq3_xxs = 18, iq1_s = 19, iq4_nl = 20, iq3_s = 21, iq2_s = 22, iq4_xs = 23
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, iq1_m = 29, bf16 = 30
    case tq1_0 = 34, tq2_0 = 35, mxfp4 = 39

    /// ggml's name for the type ("Q4_K", "BF16").
    public var name: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .f64: return "F64"
        case .i8: return "I8"
        case .i16: return "I16"
        case .i32: return "I32"
        case .i64: return "I64"
        case .mxfp4: return "MXFP4"
        default: return "\(self)".uppercased()
        }
    }

    /// (elements per block, bytes per block), as ggml's type traits (`GGML_QUANT_SIZES` in gguf-py).
    public var blockLayout: (blockSize: Int, bytesPerBlock: Int) {
        switch self {
        case .f32, .i32: return (1, 4)
        case .f16, .bf16, .i16: return (1, 2)
        case .f64, .i64: return (1, 8)
        case .i8: return (1, 1)
        case .q4_0, .iq4_nl: return (32, 18)
        case .q4_1: return (32, 20)
        case .q5_0: return (32, 22)
        case .q5_1: return (32, 24)
        case .q8_0: return (32, 34)
        case .q8_1: return (32, 40)
        case .mxfp4: return (32, 17)
        case .q2_K: return (256, 84)
        case .q3_K, .iq3_s: return (256, 110)
        case .q4_K: return (256, 144)
        case .q5_K: return (256, 176)
        case .q6_K: return (256, 210)
        case .q8_K: return (256, 292)
        case .iq2_xxs, .tq2_0: return (256, 66)
        case .iq2_xs: return (256, 74)
        case .iq3_xxs: return (256, 98)
        case .iq1_s: return (256, 50)
        case .iq2_s: return (256, 82)
        case .iq4_xs: return (256, 136)
        case .iq1_m: return (256, 56)
        case .tq1_0: return (256, 54)
        }
    }

    public var blockSize: Int { blockLayout.blockSize }
    public var bytesPerBlock: Int { blockLayout.bytesPerBlock }

    /// The types a GGUF model may use in Pagoda (issue 16): float, Q8_0, Q4_0, Q4_1 and the K-quants Q4_K–Q6_K.
    public static let supported: [GGUFTensorType] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q4_K, .q5_K, .q6_K]

    public var isSupported: Bool { GGUFTensorType.supported.contains(self) }

    /// Whether `float32Values` can widen it (the float types; the quantized ones are the kernels' business).
    public var isFloat: Bool { self == .f32 || self == .f16 || self == .bf16 }

    /// How an error names a raw type id: "Q5_0 (id 6)" or "unknown id 99".
    static func describe(id: UInt32) -> String {
        guard let t = GGUFTensorType(rawValue: id) else { return "unknown id \(id)" }
        return "\(t.name) (id \(id))"
    }
}
