import Foundation

/// One memory-mapped GGUF file (llama.cpp's model format), versions 2 and 3. Little-endian throughout:
///
/// ```
/// magic "GGUF" · uint32 version (2 or 3) · uint64 tensor_count · uint64 kv_count
/// kv_count × (string key · uint32 value type · value)             see GGUFValueType
/// tensor_count × (string name · uint32 n_dims (≤ 4) · n_dims × uint64 ne · uint32 ggml type · uint64 offset)
/// zero padding up to a multiple of `general.alignment` (uint32, default 32, a power of two)
/// tensor data: each tensor at data start + its offset (a multiple of the alignment)
/// ```
///
/// `ne[0]` is the innermost (contiguous) dimension, so the row-major shape Hugging Face uses is `ne` reversed: a
/// `[out, in]` matrix is stored with `ne = [in, out]`. Version 1 (32-bit counts) and big-endian files are errors.
///
/// The data is never copied: tensors are views into the read-only mapping, which lives as long as this object.
/// Every count, length and offset is checked against the file with overflow-safe arithmetic while parsing, so a
/// truncated or corrupt file is a `ModelLoadError` naming the file and the problem, never a trap.
public final class GGUFFile: @unchecked Sendable {
    public let path: String
    public let version: Int
    public let metadata: GGUFMetadata
    /// Tensors in file order.
    public let tensors: [GGUFTensor]
    /// `general.alignment` (32 when absent).
    public let alignment: Int
    /// Byte offset of the data section in the file.
    public let dataOffset: Int
    private let byName: [String: Int]
    private let mapping: ReadOnlyMapping

    public static let defaultAlignment = 32
    /// Deepest nesting of arrays accepted (real files use 1; the limit keeps a crafted file off the stack).
    static let maxArrayDepth = 8

    public init(path: String) throws {
        self.path = path
        mapping = try ReadOnlyMapping(path: path, minimumSize: 24) { ModelLoadError.invalidGGUF(path: path, reason: $0) }
        let m = mapping.base, size = mapping.size
        do {
            var parser = GGUFParser(base: UnsafeRawPointer(m), size: size, path: path)
            let parsed = try parser.parse()
            version = parsed.version
            metadata = parsed.metadata
            alignment = parsed.alignment
            dataOffset = parsed.dataOffset
            var tensors: [GGUFTensor] = []
            tensors.reserveCapacity(parsed.tensors.count)
            var byName: [String: Int] = [:]
            for info in parsed.tensors {
                byName[info.name] = tensors.count
                tensors.append(
                    GGUFTensor(
                        name: info.name, type: info.type, dimensions: info.dimensions, offset: info.offset,
                        byteCount: info.byteCount, elementCount: info.elementCount,
                        data: UnsafeRawPointer(m + parsed.dataOffset + info.offset)))
            }
            self.tensors = tensors
            self.byName = byName
        }
    }

    /// The tensor named `name` (GGUF name, e.g. `blk.0.attn_q.weight`), nil if absent.
    public func tensor(_ name: String) -> GGUFTensor? { byName[name].map { tensors[$0] } }

    /// `general.architecture` (every GGUF model has it).
    public var architecture: String? { metadata["general.architecture"]?.string }

    /// The GGUF file a model argument names: `path` itself when it ends in `.gguf`, the only `.gguf` file in the
    /// folder `path`, or nil when the folder has none (a safetensors folder). Several `.gguf` files in one folder are
    /// an error listing them, since picking one (or a split model's first shard) silently would be a guess.
    public static func modelFile(at path: String) throws -> String? {
        if path.hasSuffix(".gguf") { return path }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue else { return nil }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasSuffix(".gguf") }.sorted()
        guard names.count <= 1 else {
            throw ModelLoadError.invalidGGUF(
                path: path, reason: "the folder holds \(names.count) GGUF files (\(names.joined(separator: ", "))); name one")
        }
        return names.first.map { (path as NSString).appendingPathComponent($0) }
    }
}

/// A view of one tensor in a `GGUFFile`'s mapping; `data` is valid while the file object lives.
///
/// Rows are runs of whole blocks along `ne[0]`, so row `i` of any type (quantized included) is the
/// `rowByteCount` bytes at `data + i * rowByteCount` — which is what the Q/K un-permutation
/// (`GGUFTensorNames.ggufRow(forHFRow:headDim:)`) needs to pick rows without decoding them.
public struct GGUFTensor: @unchecked Sendable {
    public let name: String
    public let type: GGUFTensorType
    /// ggml order: `dimensions[0]` (`ne[0]`) is contiguous.
    public let dimensions: [Int]
    /// Offset from the start of the data section.
    public let offset: Int
    public let byteCount: Int
    public let elementCount: Int
    public let data: UnsafeRawPointer

    /// Row-major shape, outermost first (`dimensions` reversed): the shape a Hugging Face checkpoint gives.
    public var shape: [Int] { dimensions.reversed() }
    /// Elements per row (`ne[0]`; 1 for a scalar).
    public var rowLength: Int { dimensions.first ?? 1 }
    /// Number of rows (all dimensions but the first, multiplied).
    public var rowCount: Int { rowLength == 0 ? 0 : elementCount / rowLength }
    public var rowByteCount: Int { rowLength / type.blockSize * type.bytesPerBlock }

    /// Start of row `i` (`0 <= i < rowCount`).
    public func row(_ i: Int) -> UnsafeRawPointer {
        precondition(i >= 0 && i < rowCount, "row \(i) out of 0..<\(rowCount) in \(name)")
        return data + i * rowByteCount
    }

    /// The elements as float32 for the float types (F32 as is, F16 and BF16 widened); `path` names the file in the
    /// error a quantized type gets (the quantized kernels read those blocks themselves).
    public func float32Values(path: String) throws -> [Float] {
        let n = elementCount
        switch type {
        case .f32:
            return (0..<n).map { data.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
        case .f16:
            return (0..<n).map { Float(Float16(bitPattern: data.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) }
        case .bf16:
            return (0..<n).map {
                Float(bitPattern: UInt32(data.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) << 16)
            }
        default:
            throw ModelLoadError.unsupportedDType(name: name, path: path, dtype: type.name)
        }
    }
}

/// A tensor info as parsed, before it is tied to the mapping.
struct GGUFTensorInfo {
    var name: String
    var type: GGUFTensorType
    var dimensions: [Int]
    var offset: Int
    var byteCount: Int
    var elementCount: Int
}

/// Reads the header, metadata and tensor infos from the mapped bytes with a bounds-checked cursor.
struct GGUFParser {
    let base: UnsafeRawPointer
    let size: Int
    let path: String
    private var pos = 0

    init(base: UnsafeRawPointer, size: Int, path: String) {
        self.base = base
        self.size = size
        self.path = path
    }

    struct Parsed {
        var version: Int
        var metadata: GGUFMetadata
        var alignment: Int
        var dataOffset: Int
        var tensors: [GGUFTensorInfo]
    }

    private func fail(_ reason: String) -> ModelLoadError { .invalidGGUF(path: path, reason: reason) }

    /// Ensures `n` more bytes exist at the cursor; `what` says what was being read.
    private func need(_ n: Int, _ what: @autoclosure () -> String) throws {
        guard n >= 0, n <= size - pos else {
            throw fail("truncated at byte \(pos) reading \(what()) (\(n) bytes needed, \(size - pos) left)")
        }
    }

    private mutating func load<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        try need(MemoryLayout<T>.size, what())
        let v = T(littleEndian: base.loadUnaligned(fromByteOffset: pos, as: T.self))
        pos += MemoryLayout<T>.size
        return v
    }

    /// A uint64 count or length that must fit in Int.
    private mutating func count(_ what: @autoclosure () -> String) throws -> Int {
        let v = try load(UInt64.self, what())
        guard v <= UInt64(Int.max) else { throw fail("\(what()) is \(v), larger than the file") }
        return Int(v)
    }

    private mutating func string(_ what: @autoclosure () -> String) throws -> String {
        let n = try count("length of \(what())")
        guard n <= size - pos else {
            throw fail("\(what()) has length \(n) but only \(size - pos) bytes remain at byte \(pos)")
        }
        let s = String(decoding: UnsafeRawBufferPointer(start: base + pos, count: n), as: UTF8.self)
        pos += n
        return s
    }

    private mutating func value(_ type: GGUFValueType, key: String, depth: Int) throws -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try load(UInt8.self, key))
        case .int8: return .int8(try load(Int8.self, key))
        case .uint16: return .uint16(try load(UInt16.self, key))
        case .int16: return .int16(try load(Int16.self, key))
        case .uint32: return .uint32(try load(UInt32.self, key))
        case .int32: return .int32(try load(Int32.self, key))
        case .uint64: return .uint64(try load(UInt64.self, key))
        case .int64: return .int64(try load(Int64.self, key))
        case .float32: return .float32(Float(bitPattern: try load(UInt32.self, key)))
        case .float64: return .float64(Double(bitPattern: try load(UInt64.self, key)))
        case .bool:
            let b = try load(UInt8.self, key)
            guard b <= 1 else { throw fail("\(key): bool value \(b) is not 0 or 1") }
            return .bool(b == 1)
        case .string: return .string(try string(key))
        case .array:
            guard depth < GGUFParser.maxDepth else { throw fail("\(key): arrays nested deeper than \(GGUFParser.maxDepth)") }
            let raw = try load(UInt32.self, "\(key) element type")
            guard let elementType = GGUFValueType(rawValue: raw) else { throw fail("\(key): unknown array element type \(raw)") }
            let n = try count("\(key) element count")
            // Every element takes at least one byte (a string or array at least 8): refuse a count the rest of the
            // file cannot hold before reserving memory for it.
            let minSize = elementType.fixedSize ?? (elementType == .string ? 8 : 12)
            guard n <= (size - pos) / minSize else {
                throw fail("\(key): array of \(n) \(elementType) elements does not fit in the \(size - pos) bytes left")
            }
            var items: [GGUFValue] = []
            items.reserveCapacity(n)
            for _ in 0..<n { items.append(try value(elementType, key: key, depth: depth + 1)) }
            return .array(elementType, items)
        }
    }

    static let maxDepth = GGUFFile.maxArrayDepth

    mutating func parse() throws -> Parsed {
        let magic = try load(UInt32.self, "magic")
        guard magic == 0x4655_4747 else {  // "GGUF" read as a little-endian uint32
            throw fail("bad magic \(String(format: "0x%08x", magic)) (not a GGUF file)")
        }
        let rawVersion = try load(UInt32.self, "version")
        guard rawVersion == 2 || rawVersion == 3 else {
            if rawVersion.byteSwapped == 2 || rawVersion.byteSwapped == 3 {
                throw fail("big-endian GGUF (version \(rawVersion.byteSwapped)) is not supported")
            }
            throw fail("unsupported version \(rawVersion) (supported: 2, 3)")
        }
        let tensorCount = try count("tensor count")
        let kvCount = try count("metadata count")
        // A key/value takes at least 8 + 4 + 1 bytes and a tensor info 8 + 4 + 4 + 8.
        guard kvCount <= (size - pos) / 13 else { throw fail("metadata count \(kvCount) does not fit in the file") }
        guard tensorCount <= (size - pos) / 24 else { throw fail("tensor count \(tensorCount) does not fit in the file") }

        var keys: [String] = []
        var values: [String: GGUFValue] = [:]
        for i in 0..<kvCount {
            let key = try string("key of metadata entry \(i)")
            let raw = try load(UInt32.self, "type of \(key)")
            guard let type = GGUFValueType(rawValue: raw) else { throw fail("\(key): unknown value type \(raw)") }
            guard values[key] == nil else { throw fail("duplicate metadata key \(key)") }
            values[key] = try value(type, key: key, depth: 0)
            keys.append(key)
        }
        let metadata = GGUFMetadata(keys: keys, values: values)

        var alignment = GGUFFile.defaultAlignment
        if let a = metadata["general.alignment"] {
            guard case .uint32(let v) = a else { throw fail("general.alignment must be a uint32, found \(a.type)") }
            guard v > 0, v & (v - 1) == 0 else { throw fail("general.alignment \(v) is not a power of two") }
            alignment = Int(v)
        }

        var infos: [GGUFTensorInfo] = []
        infos.reserveCapacity(tensorCount)
        var seen = Set<String>()
        for i in 0..<tensorCount {
            let name = try string("name of tensor \(i)")
            guard seen.insert(name).inserted else { throw fail("duplicate tensor name \(name)") }
            let nDims = try load(UInt32.self, "\(name) dimension count")
            guard nDims >= 1, nDims <= 4 else { throw fail("tensor \(name) has \(nDims) dimensions (1 to 4 allowed)") }
            var dims: [Int] = []
            var elements = 1
            for d in 0..<Int(nDims) {
                let ne = try load(UInt64.self, "\(name) dimension \(d)")
                guard ne <= UInt64(Int.max) else { throw fail("tensor \(name): dimension \(d) is \(ne)") }
                dims.append(Int(ne))
                let (e, o) = elements.multipliedReportingOverflow(by: Int(ne))
                guard !o else { throw fail("tensor \(name): shape \(dims) overflows") }
                elements = e
            }
            let rawType = try load(UInt32.self, "\(name) type")
            let offsetRaw = try load(UInt64.self, "\(name) offset")
            guard let type = GGUFTensorType(rawValue: rawType), type.isSupported else {
                throw ModelLoadError.unsupportedGGUFTensorType(
                    path: path, tensor: name, type: GGUFTensorType.describe(id: rawType),
                    supported: GGUFTensorType.supported.map(\.name))
            }
            guard dims[0] % type.blockSize == 0 else {
                throw fail("tensor \(name): row length \(dims[0]) is not a multiple of the \(type.name) block size \(type.blockSize)")
            }
            let (bytes, o) = (elements / type.blockSize).multipliedReportingOverflow(by: type.bytesPerBlock)
            guard !o else { throw fail("tensor \(name): byte size of shape \(dims) overflows") }
            guard offsetRaw <= UInt64(Int.max), Int(offsetRaw) % alignment == 0 else {
                throw fail("tensor \(name): offset \(offsetRaw) is not a multiple of the alignment \(alignment)")
            }
            infos.append(
                GGUFTensorInfo(name: name, type: type, dimensions: dims, offset: Int(offsetRaw), byteCount: bytes, elementCount: elements))
        }

        // The data section starts at the next multiple of the alignment after the tensor infos.
        let (padded, o) = pos.addingReportingOverflow(alignment - 1)
        guard !o else { throw fail("header end overflows") }
        let dataOffset = padded / alignment * alignment
        let dataBytes = max(size - dataOffset, 0)
        if !infos.isEmpty && dataOffset > size {
            throw fail("truncated: the data section would start at byte \(dataOffset), past the end (\(size) bytes)")
        }
        for t in infos {
            let (end, o) = t.offset.addingReportingOverflow(t.byteCount)
            guard !o, end <= dataBytes else {
                throw ModelLoadError.truncatedFile(path: path, tensor: t.name, needed: o ? Int.max : end, actual: dataBytes)
            }
        }
        return Parsed(version: Int(rawVersion), metadata: metadata, alignment: alignment, dataOffset: dataOffset, tensors: infos)
    }
}
