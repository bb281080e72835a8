import Foundation
import PagodaKernels

/// All tensors of a model folder: one `model.safetensors`, or shards listed by
/// `model.safetensors.index.json` (`weight_map`: name -> file), every file memory-mapped — or of one GGUF
/// file (`init(gguf:config:)`), looked up by their Hugging Face names.
///
/// Hands out `WeightMatrix` views into the mappings (bf16/f32 and the ggml block-quantized types directly;
/// f16 upcast once into owned f32 memory) after checking shapes, so a wrong checkpoint is an error naming the
/// tensor and file. GGUF llama/mistral Q and K projections come back in the Hugging Face row order: their
/// rows (whole quantized blocks) are copied once in that order — bytes moved, never dequantized.
public final class WeightStore: @unchecked Sendable {
    public let directory: String
    private let gguf: GGUFFile?
    private let ggufConfig: ModelConfig?
    /// Row-reordered copies of GGUF tensors (kept alive here).
    private var ownedBytes: [UnsafeMutableRawPointer] = []
    /// `--quantization`: float weights of the linear layers are quantized to `type` as they are handed out.
    public var quantization: (type: WeightDType, pool: ThreadPool)?
    /// Oracle only (never the serving path): block-quantized tensors (GGUF) are dequantized to owned float32
    /// copies as they are handed out — what Hugging Face transformers computes on when it loads a GGUF.
    public var dequantization: ThreadPool?
    private var quantized: [QuantizedWeights] = []
    /// Tile copies made at load (`BlockTiles`, `UnpackedTiles`; kept alive here).
    private var tiled: [AnyObject] = []
    /// The pool tile copies are packed on (nil: no tiles; the kernels then read the blocks in place).
    public var tilePool: ThreadPool?
    private var files: [String: SafetensorsFile] = [:]
    private var location: [String: String] = [:]  // tensor name -> file name
    /// f16 tensors upcast to f32 (kept alive here).
    private var owned: [AlignedBuffer<Float>] = []

    /// The tensors of a GGUF file, whose metadata gave `config`.
    public init(gguf: GGUFFile, config: ModelConfig) {
        directory = gguf.path
        self.gguf = gguf
        ggufConfig = config
    }

    deinit { for p in ownedBytes { p.deallocate() } }

    public init(directory: String) throws {
        self.directory = directory
        gguf = nil
        ggufConfig = nil
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

    public func contains(_ name: String) -> Bool {
        if let gguf, let config = ggufConfig { return gguf.tensor(forHF: name, modelType: config.modelType) != nil }
        return location[name] != nil
    }

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

    /// A 2-D weight [rows, cols] checked against `shape` (quantized at load for the linear layers when
    /// `quantization` is set). Tile copies (with `tilePool`): Q4_0 and Q8_0 matrices unless `tiles` is false (an embedding that
    /// only serves lookups); other block types only with `unpackedTiles` (the LM head: its unpacked copy costs 1.25
    /// bytes per weight, for the largest product of every decode step).
    public func matrix(_ name: String, shape: [Int], tiles: Bool = true, unpackedTiles: Bool = false) throws -> WeightMatrix {
        var m = try storedMatrix(name, shape: shape)
        if let pool = dequantization, m.dtype.isQuantized { m = dequantized(m, pool: pool) }
        if let (type, pool) = quantization, shape.count == 2, !m.dtype.isQuantized, Self.isLinearLayer(name) {
            guard m.cols % 32 == 0 else {
                throw ModelLoadError.invalidConfig(
                    path: directory, reason: "--quantization: \(name) has \(m.cols) columns, not whole blocks of 32")
            }
            let q = QuantizedWeights(quantizing: m, to: type, pool: pool)
            quantized.append(q)
            m = q.matrix
        }
        if let pool = tilePool, tiles, BlockTiles.handles(m.dtype), shape.count == 2 {
            let t = BlockTiles(packing: m, pool: pool)
            tiled.append(t)
            m = t.matrix
        } else if let pool = tilePool, tiles, unpackedTiles, UnpackedTiles.isUseful(for: m.dtype), shape.count == 2 {
            let t = UnpackedTiles(packing: m, pool: pool)
            tiled.append(t)
            m = t.matrix
        }
        return m
    }

    /// A float32 copy of a block-quantized matrix (kept alive here), rows dequantized on `pool`.
    private func dequantized(_ m: WeightMatrix, pool: ThreadPool) -> WeightMatrix {
        let buf = AlignedBuffer<Float>(capacity: m.rows * m.cols)
        let out = buf.pointer, cols = m.cols
        pool.parallelFor(m.rows) { r in m.copyRow(r, to: out + r * cols) }
        owned.append(buf)
        return WeightMatrix(base: UnsafeRawPointer(out), rows: m.rows, cols: cols, dtype: .f32)
    }

    /// The projections of attention and MLP (and experts) — what `--quantization` quantizes; embeddings, the LM
    /// head, routers and norms keep their precision (as llama.cpp's default quantization keeps the output layer
    /// at higher precision).
    static func isLinearLayer(_ name: String) -> Bool {
        guard name.hasPrefix("model.layers."), name.hasSuffix(".weight") else { return false }
        if name.contains(".mlp.gate.weight") || name.contains("block_sparse_moe.gate.weight") { return false }
        return name.contains("_proj.weight") || name.contains(".experts.")
    }

    private func storedMatrix(_ name: String, shape: [Int]) throws -> WeightMatrix {
        if let gguf, let config = ggufConfig { return try ggufMatrix(name, shape: shape, file: gguf, config: config) }
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

    private func ggufMatrix(_ name: String, shape: [Int], file: GGUFFile, config: ModelConfig) throws -> WeightMatrix {
        guard let (t, expert) = file.tensor(forHF: name, modelType: config.modelType) else {
            throw ModelLoadError.missingTensor(name: name, searched: file.path)
        }
        let rows = shape[0], cols = shape.count > 1 ? shape[1] : 1
        let rowRange = expert.map { t.expertRows($0) } ?? 0..<t.rowCount
        let actual = expert == nil ? t.shape : [rowRange.count, t.rowLength]
        guard actual == shape || (shape.count == 1 && t.elementCount == rows && actual.count == 1) else {
            throw ModelLoadError.wrongShape(name: name, path: file.path, expected: shape, actual: actual)
        }
        let dtype: WeightDType
        switch t.type {
        case .f32: dtype = .f32
        case .bf16: dtype = .bf16
        case .q8_0: dtype = .q8_0
        case .q4_0: dtype = .q4_0
        case .q4_1: dtype = .q4_1
        case .q4_K: dtype = .q4_K
        case .q5_K: dtype = .q5_K
        case .q6_K: dtype = .q6_K
        case .f16:
            // f16 widens once to f32 (as from safetensors), in the Hugging Face row order.
            let order = try rowOrder(name, rows: rows, file: file, config: config)
            let buf = AlignedBuffer<Float>(capacity: rows * cols)
            for r in 0..<rows {
                let src = t.row(rowRange.lowerBound + (order?[r] ?? r))
                for c in 0..<cols {
                    buf.pointer[r * cols + c] = Float(Float16(bitPattern: src.loadUnaligned(fromByteOffset: c * 2, as: UInt16.self)))
                }
            }
            owned.append(buf)
            return WeightMatrix(base: UnsafeRawPointer(buf.pointer), rows: rows, cols: cols, dtype: .f32)
        default:
            throw ModelLoadError.unsupportedGGUFTensorType(
                path: file.path, tensor: t.name, type: t.type.name,
                supported: ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q5_K", "Q6_K"])
        }
        if let order = try rowOrder(name, rows: rows, file: file, config: config) {
            let rowBytes = t.rowByteCount
            let copy = UnsafeMutableRawPointer.allocate(byteCount: max(1, rows * rowBytes), alignment: 64)
            for r in 0..<rows {
                copy.advanced(by: r * rowBytes).copyMemory(from: t.row(rowRange.lowerBound + order[r]), byteCount: rowBytes)
            }
            ownedBytes.append(copy)
            return WeightMatrix(base: UnsafeRawPointer(copy), rows: rows, cols: cols, dtype: dtype)
        }
        return WeightMatrix(base: t.row(rowRange.lowerBound), rows: rows, cols: cols, dtype: dtype)
    }

    /// For llama/mistral GGUF Q and K projections (weights and biases): the GGUF row holding each Hugging Face
    /// row (llama.cpp's converter interleaves the two rotary halves of every head); nil for other tensors.
    private func rowOrder(_ name: String, rows: Int, file: GGUFFile, config: ModelConfig) throws -> [Int]? {
        guard let arch = file.architecture, GGUFTensorNames.hasPermutedQK(architecture: arch),
            name.contains(".self_attn.q_proj.") || name.contains(".self_attn.k_proj.")
        else { return nil }
        return GGUFTensorNames.hfRowOrder(rows: rows, headDim: config.resolvedHeadDim)
    }

    /// A 1-D tensor (norm weight, bias) of `count` elements, elements `range` of it as Float.
    public func vector(_ name: String, count: Int, range: Range<Int>? = nil) throws -> [Float] {
        let m = try matrix(name, shape: [count])
        let r = range ?? 0..<count
        return r.map { m.element($0, 0) }
    }
}
