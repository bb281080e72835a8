/// Why a model folder could not be loaded or run; every case names the file (or parameter) and problem.
public enum ModelLoadError: Error, CustomStringConvertible, Equatable {
    case fileNotFound(path: String)
    case invalidConfig(path: String, reason: String)
    /// A config.json field with a value that changes the maths in a way Pagoda does not implement
    /// (`ConfigFieldSupport`); `field` is the JSON key path, e.g. `rope_scaling.rope_type`.
    case unsupportedConfigValue(path: String, field: String, value: String, reason: String)
    case unsupportedArchitecture(path: String, modelType: String, supported: [String])
    case invalidSafetensors(path: String, reason: String)
    case truncatedFile(path: String, tensor: String, needed: Int, actual: Int)
    case missingTensor(name: String, searched: String)
    case wrongShape(name: String, path: String, expected: [Int], actual: [Int])
    case unsupportedDType(name: String, path: String, dtype: String)
    case invalidParallelism(reason: String)
    case invalidBatch(reason: String)
    case kvCacheNotAllocated
    /// The KV cache of `numBlocks` blocks could not be allocated (the budget exceeds the memory).
    case kvCacheAllocation(numBlocks: Int, reason: String)
    /// A GGUF file that is truncated, corrupt or of an unknown version (`GGUFFile`).
    case invalidGGUF(path: String, reason: String)
    /// A GGUF tensor whose ggml type Pagoda does not read (a known type such as Q5_0, or an unknown id).
    case unsupportedGGUFTensorType(path: String, tensor: String, type: String, supported: [String])
    /// A GGUF `general.architecture` outside the Llama family Pagoda runs.
    case unsupportedGGUFArchitecture(path: String, architecture: String, supported: [String])

    public var description: String {
        switch self {
        case .fileNotFound(let path): return "\(path): file not found"
        case .invalidConfig(let path, let reason): return "\(path): invalid config: \(reason)"
        case .unsupportedConfigValue(let path, let field, let value, let reason):
            return "\(path): \(field) = \(value) is not supported: \(reason)"
        case .unsupportedArchitecture(let path, let type, let supported):
            return "\(path): unsupported architecture model_type \"\(type)\" (supported: \(supported.joined(separator: ", ")))"
        case .invalidSafetensors(let path, let reason): return "\(path): invalid safetensors file: \(reason)"
        case .truncatedFile(let path, let tensor, let needed, let actual):
            return "\(path): truncated file: tensor \(tensor) needs \(needed) bytes but the file has \(actual)"
        case .missingTensor(let name, let searched): return "\(searched): missing tensor \(name)"
        case .wrongShape(let name, let path, let expected, let actual):
            return "\(path): tensor \(name) has shape \(actual), expected \(expected)"
        case .unsupportedDType(let name, let path, let dtype):
            return "\(path): tensor \(name) has unsupported dtype \(dtype) (supported: BF16, F16, F32)"
        case .invalidParallelism(let reason): return "invalid parallelism: \(reason)"
        case .invalidBatch(let reason): return "invalid forward batch: \(reason)"
        case .kvCacheNotAllocated: return "forward called before allocateKVCache"
        case .kvCacheAllocation(let n, let reason):
            return "the KV cache of \(n) blocks does not fit in memory (\(reason)); lower --kv-cache-memory-bytes or --gpu-memory-utilization"
        case .invalidGGUF(let path, let reason): return "\(path): invalid GGUF file: \(reason)"
        case .unsupportedGGUFTensorType(let path, let tensor, let type, let supported):
            return "\(path): tensor \(tensor) has ggml type \(type), which is not supported (supported: \(supported.joined(separator: ", ")))"
        case .unsupportedGGUFArchitecture(let path, let arch, let supported):
            return "\(path): unsupported GGUF general.architecture \"\(arch)\" (supported: \(supported.joined(separator: ", ")))"
        }
    }
}
