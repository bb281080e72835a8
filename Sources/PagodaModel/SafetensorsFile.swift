import Foundation
import PagodaKernels

/// One memory-mapped `.safetensors` file: an 8-byte little-endian header length, a JSON header
/// `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}`, then the raw data.
///
/// The data is never copied into arrays: tensors are views into the mapping, which lives as long as
/// this object. Every offset is checked against the file size at open, so a truncated file is an error
/// naming the file and the first tensor that does not fit.
public final class SafetensorsFile: @unchecked Sendable {
    /// Where one tensor lives in the mapping.
    public struct TensorInfo: Sendable {
        public var dtype: String
        public var shape: [Int]
        public var begin: Int
        public var end: Int
    }

    public let path: String
    public let tensors: [String: TensorInfo]
    private let mapping: ReadOnlyMapping
    private let dataStart: Int

    public init(path: String) throws {
        self.path = path
        mapping = try ReadOnlyMapping(path: path, minimumSize: 8) { ModelLoadError.invalidSafetensors(path: path, reason: $0) }
        let m = mapping.base, size = mapping.size
        // `Int(exactly:)`: a length of 2^63 or more (a crafted file; found by fuzzing) must be an error, not a trap.
        let rawLength = UInt64(littleEndian: m.loadUnaligned(as: UInt64.self))
        guard let headerLength = Int(exactly: rawLength), headerLength > 0, headerLength <= size - 8 else {
            throw ModelLoadError.invalidSafetensors(
                path: path, reason: "header length \(rawLength) does not fit in the file (\(size) bytes): truncated or not safetensors")
        }
        dataStart = 8 + headerLength
        tensors = try SafetensorsFile.parseHeader(
            Data(bytesNoCopy: m + 8, count: headerLength, deallocator: .none), path: path, dataBytes: size - dataStart)
    }

    private static func parseHeader(_ data: Data, path: String, dataBytes: Int) throws -> [String: TensorInfo] {
        guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ModelLoadError.invalidSafetensors(path: path, reason: "header is not a JSON object")
        }
        var out: [String: TensorInfo] = [:]
        for (name, value) in json where name != "__metadata__" {
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2
            else {
                throw ModelLoadError.invalidSafetensors(path: path, reason: "tensor \(name) has a malformed header entry")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, end >= begin, shape.allSatisfy({ $0 >= 0 }) else {
                throw ModelLoadError.invalidSafetensors(path: path, reason: "tensor \(name) has bad offsets or shape")
            }
            if end > dataBytes {
                throw ModelLoadError.truncatedFile(path: path, tensor: name, needed: end, actual: dataBytes)
            }
            if let size = elementSize(dtype) {
                // Checked products: a crafted header's shape must not overflow (and stop the process).
                var expected: Int? = size
                for d in shape { expected = expected.flatMap { e in let (v, o) = e.multipliedReportingOverflow(by: d); return o ? nil : v } }
                guard let expected else {
                    throw ModelLoadError.invalidSafetensors(path: path, reason: "tensor \(name): shape \(shape) overflows")
                }
                guard expected == end - begin else {
                    throw ModelLoadError.invalidSafetensors(
                        path: path, reason: "tensor \(name): shape \(shape) × \(dtype) is \(expected) bytes, offsets give \(end - begin)")
                }
            }
            out[name] = TensorInfo(dtype: dtype, shape: shape, begin: begin, end: end)
        }
        return out
    }

    static func elementSize(_ dtype: String) -> Int? {
        switch dtype {
        case "BF16", "F16", "I16", "U16": return 2
        case "F32", "I32", "U32": return 4
        case "F64", "I64", "U64": return 8
        case "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2": return 1
        default: return nil
        }
    }

    /// Raw bytes of a tensor in the mapping.
    public func data(of info: TensorInfo) -> UnsafeRawPointer {
        UnsafeRawPointer(mapping.base + dataStart + info.begin)
    }
}
