import Foundation
import PagodaKernels

/// All tensors of a model folder: one `model.safetensors`, or shards listed by
/// `model.safetensors.index.json` (`weight_map`: name -> file), every file memory-mapped.
///
/// Hands out `WeightMatrix` views into the mappings (bf16/f32 directly; f16 upcast once into owned f32
/// memory) after checking shapes, so a wrong checkpoint is an error naming the tensor and file.
public final class WeightStore: @unchecked Sendable {
    public let directory: String
    private var files: [String: SafetensorsFile] = [:]
    private var location: [String: String] = [:]  // tensor name -> file name
    /// f16 tensors upcast to f32 (kept alive here).
    private var owned: [AlignedBuffer<Float>] = []

    public init(directory: String) throws {
        self.directory = directory
        let fm = FileManager.default
        let index = (directory as NSString).appendingPathComponent("model.safetensors.index.json")
        if fm.fileExists(atPath: index) {
            guard let data = fm.contents(atPath: index),
                let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let map = json["weight_map"] as? [String: String]
            else {
                throw ModelLoadError.invalidSafetensors(path: index, reason: "no weight_map object")
            }
            for file in Set(map.values).sorted() {
                files[file] = try SafetensorsFile(path: (directory as NSString).appendingPathComponent(file))
            }
            for (name, file) in map {
                guard files[file]?.tensors[name] != nil else {
                    throw ModelLoadError.missingTensor(name: name, searched: (directory as NSString).appendingPathComponent(file))
                }
                location[name] = file
            }
        } else {
            var names = (try? fm.contentsOfDirectory(atPath: directory))?.filter { $0.hasSuffix(".safetensors") }.sorted() ?? []
            if names.contains("model.safetensors") { names = ["model.safetensors"] }
            guard !names.isEmpty else {
                throw ModelLoadError.fileNotFound(path: (directory as NSString).appendingPathComponent("model.safetensors"))
            }
            for file in names {
                let f = try SafetensorsFile(path: (directory as NSString).appendingPathComponent(file))
                files[file] = f
                for name in f.tensors.keys { location[name] = file }
            }
        }
    }

    public func contains(_ name: String) -> Bool { location[name] != nil }

    /// Where a tensor was looked for, for error messages.
    private var searchDescription: String {
        files.count == 1
            ? (directory as NSString).appendingPathComponent(files.keys.first!)
            : (directory as NSString).appendingPathComponent("model.safetensors.index.json")
    }

    /// The tensor's metadata and file; throws `missingTensor`.
    public func info(_ name: String) throws -> (SafetensorsFile, SafetensorsFile.TensorInfo) {
        guard let file = location[name], let f = files[file], let info = f.tensors[name] else {
            throw ModelLoadError.missingTensor(name: name, searched: searchDescription)
        }
        return (f, info)
    }

    /// A 2-D weight [rows, cols] checked against `shape`.
    public func matrix(_ name: String, shape: [Int]) throws -> WeightMatrix {
        let (f, info) = try self.info(name)
        guard info.shape == shape else {
            throw ModelLoadError.wrongShape(name: name, path: f.path, expected: shape, actual: info.shape)
        }
        let rows = shape[0], cols = shape.count > 1 ? shape[1] : 1
        switch info.dtype {
        case "BF16": return WeightMatrix(base: f.data(of: info), rows: rows, cols: cols, dtype: .bf16)
        case "F32": return WeightMatrix(base: f.data(of: info), rows: rows, cols: cols, dtype: .f32)
        case "F16":
            let buf = AlignedBuffer<Float>(capacity: rows * cols)
            let src = f.data(of: info)
            for i in 0..<(rows * cols) {
                buf.pointer[i] = Float(Float16(bitPattern: src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
            }
            owned.append(buf)
            return WeightMatrix(base: UnsafeRawPointer(buf.pointer), rows: rows, cols: cols, dtype: .f32)
        default:
            throw ModelLoadError.unsupportedDType(name: name, path: f.path, dtype: info.dtype)
        }
    }

    /// A 1-D tensor (norm weight, bias) of `count` elements, elements `range` of it as Float.
    public func vector(_ name: String, count: Int, range: Range<Int>? = nil) throws -> [Float] {
        let m = try matrix(name, shape: [count])
        let r = range ?? 0..<count
        return r.map { m.element($0, 0) }
    }
}
