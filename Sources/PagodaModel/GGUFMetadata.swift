/// The type tag of a GGUF metadata value (`gguf_type` in gguf.h); every value is little-endian.
///
/// | tag | type | encoding |
/// | --- | --- | --- |
/// | 0, 1 | uint8, int8 | 1 byte |
/// | 2, 3 | uint16, int16 | 2 bytes |
/// | 4, 5, 6 | uint32, int32, float32 | 4 bytes |
/// | 7 | bool | 1 byte, 0 or 1 |
/// | 8 | string | uint64 byte length, then UTF-8 bytes (no terminator) |
/// | 9 | array | uint32 element tag, uint64 count, then the elements (arrays may nest) |
/// | 10, 11, 12 | uint64, int64, float64 | 8 bytes |
public enum GGUFValueType: UInt32, Sendable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
    case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// Encoded size of one value, nil for strings and arrays (variable).
    var fixedSize: Int? {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64: return 8
        case .string, .array: return nil
        }
    }
}

/// One metadata value of a GGUF file, as stored.
public indirect enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case uint64(UInt64), int64(Int64), float32(Float), float64(Double), bool(Bool), string(String)
    /// The element type as written (kept so an empty array still says what it holds) and the elements.
    case array(GGUFValueType, [GGUFValue])

    /// Any integer type as Int (nil for other types and for a uint64 above Int.max).
    public var int: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return v <= UInt64(Int.max) ? Int(v) : nil
        case .int64(let v): return Int(v)
        default: return nil
        }
    }

    /// A float or an integer as Double.
    public var double: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return int.map(Double.init)
        }
    }

    public var bool: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    public var string: String? { if case .string(let s) = self { return s } else { return nil } }
    public var array: [GGUFValue]? { if case .array(_, let a) = self { return a } else { return nil } }

    /// An array whose elements are all strings.
    public var strings: [String]? {
        guard case .array(.string, let a) = self else { return nil }
        return a.compactMap(\.string)
    }

    /// An array of numbers as Double (scores).
    public var doubles: [Double]? {
        guard let a = array else { return nil }
        var out: [Double] = []
        out.reserveCapacity(a.count)
        for v in a {
            guard let d = v.double else { return nil }
            out.append(d)
        }
        return out
    }

    /// An array of integers as Int (token types).
    public var ints: [Int]? {
        guard let a = array else { return nil }
        var out: [Int] = []
        out.reserveCapacity(a.count)
        for v in a {
            guard let i = v.int else { return nil }
            out.append(i)
        }
        return out
    }

    /// The stored type tag.
    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .uint64: return .uint64
        case .int64: return .int64
        case .float32: return .float32
        case .float64: return .float64
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        }
    }
}

/// The key/value metadata of a GGUF file, in file order, with lookup by key.
public struct GGUFMetadata: Sendable {
    /// Keys in the order the file lists them.
    public let keys: [String]
    private let values: [String: GGUFValue]

    init(keys: [String], values: [String: GGUFValue]) {
        self.keys = keys
        self.values = values
    }

    public subscript(key: String) -> GGUFValue? { values[key] }
    public var count: Int { keys.count }
}

extension GGUFValue {
    /// The value as a plain Swift value: integers as `Int` (a uint64 above `Int.max` as `UInt64`), floats as `Double`,
    /// `Bool`, `String`; arrays as `[String]`, `[Int]` or `[Double]` when their elements are all of one of those kinds,
    /// else `[Any]`. What `GGUFVocabulary(metadata:path:)` in PagodaTokenizer reads.
    public var plainValue: Any {
        switch self {
        case .bool(let b): return b
        case .string(let s): return s
        case .float32, .float64: return double ?? 0
        case .uint64(let v) where v > UInt64(Int.max): return v
        case .array(let type, let items):
            switch type {
            case .string: return items.compactMap(\.string)
            case .float32, .float64: return items.compactMap(\.double)
            case .bool, .array: return items.map(\.plainValue)
            default:
                let ints = items.compactMap(\.int)
                return ints.count == items.count ? ints : items.map(\.plainValue)
            }
        default: return int ?? 0
        }
    }
}

extension GGUFMetadata {
    /// The entries whose key starts with `prefix` as plain values (`GGUFValue.plainValue`), e.g. `"tokenizer."`
    /// for `GGUFVocabulary(metadata: file.metadata.plainValues(prefix: "tokenizer."), path: file.path)`.
    public func plainValues(prefix: String) -> [String: Any] {
        var out: [String: Any] = [:]
        for k in keys where k.hasPrefix(prefix) { out[k] = self[k]?.plainValue }
        return out
    }
}
