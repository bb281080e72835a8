// JSON in and out of template values. In: `JSONReader` with every object in document order (JSONSerialization
// loses key order). Out: Python's json.dumps, which is what transformers' `tojson` filter calls.

import Foundation

extension JinjaValue {
    /// Parses JSON text into a value, keeping object keys in document order.
    /// Integers stay `.int` (as Python's json.loads keeps them), numbers with a fraction or exponent are `.float`.
    public init(json data: Data) throws {
        let parsed: Any
        do {
            parsed = try JSONReader.parse(data, orderedObjects: true)
        } catch let e as JSONReader.ParseError {
            throw ChatTemplateError(.runtime, "invalid JSON at byte \(e.offset): \(e.message)")
        }
        try self.init(foundation: parsed)
    }

    public init(jsonString: String) throws {
        try self.init(json: Data(jsonString.utf8))
    }

    /// Converts a Foundation JSON object (JSONSerialization output, or Swift arrays/dictionaries of
    /// String/Int/Double/Bool/NSNull). Dictionary key order is whatever the dictionary yields: use
    /// `init(json:)` when order matters (it does for `tojson` and printed dicts).
    public init(foundation object: Any?) throws {
        guard let object = object, !(object is NSNull) else {
            self = .null
            return
        }
        switch object {
        case let v as JinjaValue: self = v
        case let s as String: self = .string(s)
        case let p as JSONPairs:
            var out = JinjaDict()
            for (k, v) in p.pairs { out[k] = try JinjaValue(foundation: v) }
            self = .dict(out)
        case let b as Bool where type(of: object) == Bool.self: self = .bool(b)
        case let i as Int where type(of: object) == Int.self: self = .int(i)
        case let d as Double where type(of: object) == Double.self: self = .float(d)
        case let n as NSNumber: self = JinjaValue(number: n)
        case let a as [Any?]: self = .list(try a.map { try JinjaValue(foundation: $0) })
        case let a as [Any]: self = .list(try a.map { try JinjaValue(foundation: $0) })
        case let d as [String: Any?]:
            var out = JinjaDict()
            for (k, v) in d { out[k] = try JinjaValue(foundation: v) }
            self = .dict(out)
        case let d as [String: Any]:
            var out = JinjaDict()
            for (k, v) in d { out[k] = try JinjaValue(foundation: v) }
            self = .dict(out)
        default:
            throw ChatTemplateError(.runtime, "cannot convert a value of type \(type(of: object)) to a template value")
        }
    }

    private init(number n: NSNumber) {
        let type = String(cString: n.objCType)
        if type == "c" || type == "B" {
            self = .bool(n.boolValue)
        } else if type == "d" || type == "f" {
            self = .float(n.doubleValue)
        } else {
            self = .int(n.intValue)
        }
    }
}

/// Python's `json.dumps(value, ensure_ascii=, indent=, separators=, sort_keys=)`.
struct PythonJSONEncoder {
    var ensureASCII = false
    /// nil: one line. Otherwise the text repeated once per nesting level (an int indent is that many spaces).
    var indent: String?
    var itemSeparator = ", "
    var keySeparator = ": "
    var sortKeys = false

    /// Python's default separators: `(", ", ": ")` without indent, `(",", ": ")` with one.
    init(ensureASCII: Bool = false, indent: String? = nil, separators: (String, String)? = nil, sortKeys: Bool = false) {
        self.ensureASCII = ensureASCII
        self.indent = indent
        self.sortKeys = sortKeys
        if let (item, key) = separators {
            itemSeparator = item
            keySeparator = key
        } else if indent != nil {
            itemSeparator = ","
        }
    }

    func encode(_ value: JinjaValue) throws -> String {
        var out = ""
        try write(value, level: 0, into: &out)
        return out
    }

    private func write(_ value: JinjaValue, level: Int, into out: inout String) throws {
        switch value {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .float(let d):
            if d.isNaN {
                out += "NaN"
            } else if d.isInfinite {
                out += d < 0 ? "-Infinity" : "Infinity"
            } else {
                out += pythonFloatRepr(d)
            }
        case .string(let s): writeString(s, into: &out)
        case .list(let a), .tuple(let a):
            if a.isEmpty {
                out += "[]"
                return
            }
            out += "["
            for (i, v) in a.enumerated() {
                if i > 0 { out += itemSeparator }
                newline(level + 1, into: &out)
                try write(v, level: level + 1, into: &out)
            }
            newline(level, into: &out)
            out += "]"
        case .dict(let d):
            if d.isEmpty {
                out += "{}"
                return
            }
            out += "{"
            let items = sortKeys ? d.items.sorted { $0.key.unicodeScalars.lexicographicallyPrecedes($1.key.unicodeScalars) } : d.items
            for (i, kv) in items.enumerated() {
                if i > 0 { out += itemSeparator }
                newline(level + 1, into: &out)
                writeString(kv.key, into: &out)
                out += keySeparator
                try write(kv.value, level: level + 1, into: &out)
            }
            newline(level, into: &out)
            out += "}"
        case .undefined, .namespace, .callable:
            throw ChatTemplateError(.runtime, "Object of type \(value.typeName) is not JSON serializable")
        }
    }

    private func newline(_ level: Int, into out: inout String) {
        guard let indent = indent else { return }
        out += "\n"
        for _ in 0..<level { out += indent }
    }

    private func writeString(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 {
                    out += "\\u" + hex4(scalar.value)
                } else if ensureASCII && scalar.value > 0x7E {
                    if scalar.value >= 0x10000 {
                        let v = scalar.value - 0x10000
                        out += "\\u" + hex4(0xD800 + (v >> 10)) + "\\u" + hex4(0xDC00 + (v & 0x3FF))
                    } else {
                        out += "\\u" + hex4(scalar.value)
                    }
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }

    private func hex4(_ v: UInt32) -> String {
        let h = String(v, radix: 16)
        return String(repeating: "0", count: 4 - h.count) + h
    }
}
