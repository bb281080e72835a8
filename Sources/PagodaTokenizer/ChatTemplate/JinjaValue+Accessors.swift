// Conveniences for code that builds or inspects template values (the server's request path, the CLI).

// Values built from JSON are immutable; namespaces and callables exist only inside one render.
extension JinjaValue: @unchecked Sendable {}
extension JinjaDict: @unchecked Sendable {}

extension JinjaValue {
    /// The value under `key` when this is a dict (nil otherwise or when absent).
    public subscript(key: String) -> JinjaValue? {
        if case .dict(let d) = self { return d[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// Elements of a list or tuple.
    public var arrayValue: [JinjaValue]? { sequenceElements }

    public var dictValue: JinjaDict? {
        if case .dict(let d) = self { return d }
        return nil
    }

    /// Python's `json.dumps(value, ensure_ascii=False, indent=indent)`: `", "`/`": "` separators on one
    /// line, keys in insertion order (what `tojson` prints). Throws for Undefined and callables.
    public func jsonText(indent: Int? = nil) throws -> String {
        try PythonJSONEncoder(indent: indent.map { String(repeating: " ", count: max(0, $0)) }).encode(self)
    }
}
