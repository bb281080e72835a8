import Foundation
import PagodaModel

/// Writes GGUF files for the tests (the layout `GGUFFile` documents), including broken ones: every field is
/// written as given, so a test can state a wrong count, type or offset.
struct GGUFTestWriter {
    enum Value {
        case u8(UInt8), i8(Int8), u16(UInt16), i16(Int16), u32(UInt32), i32(Int32), u64(UInt64), i64(Int64)
        case f32(Float), f64(Double), bool(Bool), str(String)
        case array(UInt32, [Value])

        var tag: UInt32 {
            switch self {
            case .u8: return 0
            case .i8: return 1
            case .u16: return 2
            case .i16: return 3
            case .u32: return 4
            case .i32: return 5
            case .f32: return 6
            case .bool: return 7
            case .str: return 8
            case .array: return 9
            case .u64: return 10
            case .i64: return 11
            case .f64: return 12
            }
        }
    }

    struct Tensor {
        var name: String
        var dims: [UInt64]
        var type: UInt32
        var data: [UInt8]
        /// Written instead of the computed offset when set.
        var offsetOverride: UInt64? = nil
    }

    var version: UInt32 = 3
    var alignment: Int = 32
    var metadata: [(String, Value)] = []
    var tensors: [Tensor] = []

    static func put<T: FixedWidthInteger>(_ v: T, _ out: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }
    static func put(_ s: String, _ out: inout [UInt8]) {
        put(UInt64(s.utf8.count), &out)
        out.append(contentsOf: s.utf8)
    }
    static func put(_ v: Value, _ out: inout [UInt8]) {
        switch v {
        case .u8(let x): put(x, &out)
        case .i8(let x): put(x, &out)
        case .u16(let x): put(x, &out)
        case .i16(let x): put(x, &out)
        case .u32(let x): put(x, &out)
        case .i32(let x): put(x, &out)
        case .u64(let x): put(x, &out)
        case .i64(let x): put(x, &out)
        case .f32(let x): put(x.bitPattern, &out)
        case .f64(let x): put(x.bitPattern, &out)
        case .bool(let b): out.append(b ? 1 : 0)
        case .str(let s): put(s, &out)
        case .array(let type, let items):
            put(type, &out)
            put(UInt64(items.count), &out)
            for i in items { put(i, &out) }
        }
    }

    /// The file's bytes; `headerEnd` is where the tensor infos end (before padding).
    func bytes() -> (bytes: [UInt8], headerEnd: Int, dataOffset: Int) {
        var out: [UInt8] = Array("GGUF".utf8)
        GGUFTestWriter.put(version, &out)
        GGUFTestWriter.put(UInt64(tensors.count), &out)
        GGUFTestWriter.put(UInt64(metadata.count), &out)
        for (k, v) in metadata {
            GGUFTestWriter.put(k, &out)
            GGUFTestWriter.put(v.tag, &out)
            GGUFTestWriter.put(v, &out)
        }
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            offsets.append(offset)
            GGUFTestWriter.put(t.name, &out)
            GGUFTestWriter.put(UInt32(t.dims.count), &out)
            for d in t.dims { GGUFTestWriter.put(d, &out) }
            GGUFTestWriter.put(t.type, &out)
            GGUFTestWriter.put(t.offsetOverride ?? UInt64(offset), &out)
            offset += (t.data.count + alignment - 1) / alignment * alignment
        }
        let headerEnd = out.count
        while out.count % alignment != 0 { out.append(0) }
        let dataOffset = out.count
        for (t, o) in zip(tensors, offsets) {
            while out.count < dataOffset + o { out.append(0) }
            out.append(contentsOf: t.data)
        }
        return (out, headerEnd, dataOffset)
    }

    /// Writes `bytes` to a fresh temporary file and returns its path.
    static func write(_ bytes: [UInt8], name: String = "test.gguf") -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pagoda-gguf-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent(name).path
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    func write(name: String = "test.gguf") -> String { GGUFTestWriter.write(bytes().bytes, name: name) }

    static func floats(_ xs: [Float]) -> [UInt8] {
        var out: [UInt8] = []
        for x in xs { put(x.bitPattern, &out) }
        return out
    }
}
