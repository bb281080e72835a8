import Foundation

/// Why a tokenizer folder could not be loaded. Every case names the file and, where there is one, the field.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    /// The file is missing or unreadable.
    case fileNotFound(path: String)
    /// The file is not valid JSON (truncated, bad syntax) or not a JSON object at the top.
    case invalidJSON(path: String, reason: String)
    /// A required field is missing or has the wrong type.
    case invalidField(path: String, field: String, reason: String)
    /// `model.type` names a model Pagoda does not implement.
    case unknownModelType(path: String, type: String)
    /// A normalizer/pre-tokenizer/post-processor/decoder `type` Pagoda does not implement.
    case unsupportedComponent(path: String, field: String, type: String)
    /// A regex pattern from the file that ICU cannot compile.
    case invalidPattern(path: String, field: String, pattern: String, reason: String)

    public var description: String {
        switch self {
        case .fileNotFound(let path): return "\(path): file not found or unreadable"
        case .invalidJSON(let path, let reason): return "\(path): invalid JSON: \(reason)"
        case .invalidField(let path, let field, let reason): return "\(path): field \(field): \(reason)"
        case .unknownModelType(let path, let type): return "\(path): field model.type: unknown model type \"\(type)\""
        case .unsupportedComponent(let path, let field, let type):
            return "\(path): field \(field): unsupported type \"\(type)\""
        case .invalidPattern(let path, let field, let pattern, let reason):
            return "\(path): field \(field): regex \(pattern.debugDescription) does not compile: \(reason)"
        }
    }
}

/// A JSON object from `JSONSerialization` with typed accessors that throw `TokenizerError.invalidField`.
/// `path` is the file and `field` the dotted location, so every error names where it came from.
struct JSONObject {
    let dict: [String: Any]
    let path: String
    let field: String

    init(_ dict: [String: Any], path: String, field: String = "") {
        self.dict = dict
        self.path = path
        self.field = field
    }

    func name(_ key: String) -> String { field.isEmpty ? key : "\(field).\(key)" }

    func isNull(_ key: String) -> Bool { dict[key] == nil || dict[key] is NSNull }

    func string(_ key: String) throws -> String {
        guard let v = dict[key] as? String else {
            throw TokenizerError.invalidField(path: path, field: name(key), reason: "expected a string")
        }
        return v
    }
    func optionalString(_ key: String) throws -> String? {
        if isNull(key) { return nil }
        return try string(key)
    }
    func bool(_ key: String, default d: Bool) throws -> Bool {
        if isNull(key) { return d }
        guard let v = dict[key] as? Bool else {
            throw TokenizerError.invalidField(path: path, field: name(key), reason: "expected a boolean")
        }
        return v
    }
    func int(_ key: String) throws -> Int {
        guard let n = dict[key] as? NSNumber else {
            throw TokenizerError.invalidField(path: path, field: name(key), reason: "expected an integer")
        }
        return n.intValue
    }
    func int(_ key: String, default d: Int) throws -> Int {
        if isNull(key) { return d }
        return try int(key)
    }
    func object(_ key: String) throws -> JSONObject {
        guard let v = dict[key] as? [String: Any] else {
            throw TokenizerError.invalidField(path: path, field: name(key), reason: "expected an object")
        }
        return JSONObject(v, path: path, field: name(key))
    }
    func optionalObject(_ key: String) throws -> JSONObject? {
        if isNull(key) { return nil }
        return try object(key)
    }
    func array(_ key: String) throws -> [Any] {
        guard let v = dict[key] as? [Any] else {
            throw TokenizerError.invalidField(path: path, field: name(key), reason: "expected an array")
        }
        return v
    }
    func objects(_ key: String) throws -> [JSONObject] {
        let items = try array(key)
        return try items.enumerated().map { (i, item) in
            guard let d = item as? [String: Any] else {
                throw TokenizerError.invalidField(path: path, field: "\(name(key))[\(i)]", reason: "expected an object")
            }
            return JSONObject(d, path: path, field: "\(name(key))[\(i)]")
        }
    }
    /// The component's `type` field (normalizers, pre-tokenizers, ...).
    func type() throws -> String { try string("type") }

    /// Reads and parses a JSON object file; objects under `exactKeys` keep their keys byte-exact (`JSONPairs`).
    static func load(path: String, exactKeys: Set<String> = []) throws -> JSONObject {
        // An empty file is refused before Foundation reads it (its read of a 0-byte file leaks the buffer:
        // LeakSanitizer, found by fuzzing the tokenizer.json parser).
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int, size == 0 {
            throw TokenizerError.invalidJSON(path: path, reason: "the file is empty")
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw TokenizerError.fileNotFound(path: path) }
        let any: Any
        do {
            any = try JSONReader.parse(data, exactKeys: exactKeys)
        } catch {
            throw TokenizerError.invalidJSON(path: path, reason: "\(error)")
        }
        guard let d = any as? [String: Any] else {
            throw TokenizerError.invalidJSON(path: path, reason: "top level is not an object")
        }
        return JSONObject(d, path: path)
    }
}
