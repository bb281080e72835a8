/// Compiles a JSON schema into a `Grammar` whose strings are exactly the compact JSON documents
/// (`json.dumps` layout) that validate against it. Supported: `type` (object, array, string,
/// number, integer, boolean, null, or a list of them), `properties`, `required`,
/// `additionalProperties` (extra properties are never generated), `items`, `minItems`, `maxItems`,
/// `minLength`, `maxLength`, `enum`, `const`, `anyOf`/`oneOf`, `$ref` into `$defs`/`definitions`,
/// and annotations (`title`, `description`, `default`, `examples`, ...), which are ignored. Any
/// other keyword is an `unsupportedSchema` error naming it. Integers have at most 18 digits and
/// fractions 16 (`GrammarBuilder.maxIntegerDigits`), so a repeating model cannot loop inside a number.
public struct JSONSchemaCompiler {
    /// Keywords that do not constrain the value.
    static let annotations: Set<String> = [
        "title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly", "writeOnly",
        "$defs", "definitions", "strict",
    ]
    static let implemented: Set<String> = [
        "type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems", "minLength", "maxLength",
        "enum", "const", "anyOf", "oneOf", "$ref",
    ]

    let root: StructuredJSON
    let b = GrammarBuilder()
    var refRules: [String: Int] = [:]

    public static func compile(_ schema: StructuredJSON) throws -> Grammar {
        var c = JSONSchemaCompiler(root: schema)
        let top = try c.value(schema, path: "#")
        let r = c.b.declare("root")
        c.b.define(r, [top])
        return try c.b.finish(root: r)
    }

    /// The grammar symbols of one schema node.
    mutating func value(_ s: StructuredJSON, path: String) throws -> [GrammarSymbol] {
        if case .bool(let v) = s {
            guard v else { throw StructuredOutputError.unsupportedSchema(keyword: "false", detail: "schema at \(path) accepts nothing") }
            return [b.jsonAnyValue()]
        }
        guard let pairs = s.objectPairs else { throw StructuredOutputError.invalidSchema("schema at \(path) is not an object") }
        for (k, _) in pairs where !Self.annotations.contains(k) && !Self.implemented.contains(k) {
            throw StructuredOutputError.unsupportedSchema(keyword: k, detail: "at \(path)")
        }
        if let ref = s["$ref"] {
            guard pairs.count == 1 || pairs.allSatisfy({ $0.key == "$ref" || Self.annotations.contains($0.key) }) else {
                throw StructuredOutputError.unsupportedSchema(keyword: "$ref", detail: "with sibling keywords at \(path)")
            }
            return [.rule(try reference(ref, path: path))]
        }
        if let c = s["const"] { return b.literal(c.text) }
        if let e = s["enum"] {
            guard let values = e.arrayValue, !values.isEmpty else {
                throw StructuredOutputError.invalidSchema("enum at \(path) must be a non-empty array")
            }
            return [b.rule("enum", values.map { b.literal($0.text) })]
        }
        for key in ["anyOf", "oneOf"] {
            if let a = s[key] {
                guard let subs = a.arrayValue, !subs.isEmpty else {
                    throw StructuredOutputError.invalidSchema("\(key) at \(path) must be a non-empty array")
                }
                var alts: [[GrammarSymbol]] = []
                for (i, sub) in subs.enumerated() { alts.append(try value(sub, path: "\(path)/\(key)/\(i)")) }
                return [b.rule(key, alts)]
            }
        }
        guard let type = s["type"] else {
            if s["properties"] != nil { return try object(s, path: path) }
            if s["items"] != nil { return try array(s, path: path) }
            return [b.jsonAnyValue()]
        }
        if let types = type.arrayValue {
            var alts: [[GrammarSymbol]] = []
            for t in types {
                guard let name = t.stringValue else { throw StructuredOutputError.invalidSchema("type at \(path) must hold strings") }
                alts.append(try typed(name, s, path: path))
            }
            return [b.rule("types", alts)]
        }
        guard let name = type.stringValue else { throw StructuredOutputError.invalidSchema("type at \(path) must be a string or a list") }
        return try typed(name, s, path: path)
    }

    mutating func typed(_ type: String, _ s: StructuredJSON, path: String) throws -> [GrammarSymbol] {
        switch type {
        case "object": return try object(s, path: path)
        case "array": return try array(s, path: path)
        case "string":
            let lo = s["minLength"]?.intValue ?? 0
            let hi = s["maxLength"]?.intValue
            if let hi, hi < lo { throw StructuredOutputError.invalidSchema("maxLength < minLength at \(path)") }
            if lo > 10_000 || (hi ?? 0) > 10_000 {
                throw StructuredOutputError.unsupportedSchema(keyword: "maxLength", detail: "bounds above 10000 at \(path)")
            }
            return [b.jsonString(min: lo, max: hi)]
        case "integer": return [b.jsonInteger()]
        case "number": return [b.jsonNumber()]
        case "boolean": return [b.rule("boolean", [b.literal("true"), b.literal("false")])]
        case "null": return b.literal("null")
        default: throw StructuredOutputError.invalidSchema("unknown type '\(type)' at \(path)")
        }
    }

    /// `{"a": A, "b": B}` with the declared properties in order: required ones always, optional
    /// ones optionally; no undeclared property is generated (so the output validates whatever
    /// `additionalProperties` says). An object schema without `properties` is any object.
    mutating func object(_ s: StructuredJSON, path: String) throws -> [GrammarSymbol] {
        guard let props = s["properties"] else {
            if case .bool(false)? = s["additionalProperties"] { return b.literal("{}") }
            if let extra = s["additionalProperties"], extra.objectPairs != nil {
                // A map: {"key": V, ...}.
                let member = [b.jsonString()] + b.literal(": ") + (try value(extra, path: "\(path)/additionalProperties"))
                let more = b.star(b.literal(", ") + member, "members")
                return b.literal("{") + [b.optional(member + [more], "map-body")] + b.literal("}")
            }
            return [b.jsonAnyObject()]
        }
        guard let list = props.objectPairs else { throw StructuredOutputError.invalidSchema("properties at \(path) must be an object") }
        var required = Set<String>()
        if let r = s["required"] {
            guard let names = r.arrayValue?.compactMap(\.stringValue) else {
                throw StructuredOutputError.invalidSchema("required at \(path) must be a list")
            }
            for n in names {
                guard list.contains(where: { $0.key == n }) else {
                    throw StructuredOutputError.unsupportedSchema(keyword: "required", detail: "'\(n)' is not in properties at \(path)")
                }
                required.insert(n)
            }
        }
        var members: [(required: Bool, symbols: [GrammarSymbol])] = []
        for (k, v) in list {
            let kv = b.literal(StructuredJSON.quoted(k) + ": ") + (try value(v, path: "\(path)/properties/\(k)"))
            members.append((required.contains(k), kv))
        }
        // body(i): members i..., the first one present needs no comma. rest(i): members i...
        // each preceded by ", ".
        var rest: [GrammarSymbol] = []  // symbols for ", "-prefixed members from the end
        var restAt = [[GrammarSymbol]](repeating: [], count: members.count + 1)
        for i in stride(from: members.count - 1, through: 0, by: -1) {
            let withComma = b.literal(", ") + members[i].symbols
            rest = members[i].required ? withComma + rest : [b.optional(withComma, "opt-prop")] + rest
            restAt[i] = rest
        }
        // The first member present: the first required one, or any optional one before it.
        var firstAlts: [[GrammarSymbol]] = []
        var allOptional = true
        for i in members.indices {
            firstAlts.append(members[i].symbols + restAt[i + 1])
            if members[i].required { allOptional = false; break }
        }
        if allOptional { firstAlts.append([]) }
        return b.literal("{") + [b.rule("object-body", firstAlts)] + b.literal("}")
    }

    mutating func array(_ s: StructuredJSON, path: String) throws -> [GrammarSymbol] {
        let item: [GrammarSymbol]
        if let items = s["items"] { item = try value(items, path: "\(path)/items") } else { item = [b.jsonAnyValue()] }
        let lo = s["minItems"]?.intValue ?? 0
        let hi = s["maxItems"]?.intValue
        if let hi, hi < lo { throw StructuredOutputError.invalidSchema("maxItems < minItems at \(path)") }
        if lo > 1000 || (hi ?? 0) > 1000 {
            throw StructuredOutputError.unsupportedSchema(keyword: "maxItems", detail: "bounds above 1000 at \(path)")
        }
        let itemRule = b.rule("item", [item])
        let tail = b.repeated(b.literal(", ") + [itemRule], min: max(lo - 1, 0), max: hi.map { max($0 - 1, 0) }, "items")
        let nonEmpty = [itemRule] + tail
        if hi == 0 { return b.literal("[]") }
        let body = lo == 0 ? [b.optional(nonEmpty, "array-body")] : nonEmpty
        return b.literal("[") + body + b.literal("]")
    }

    /// A rule for `$ref` (`#`, `#/$defs/X`, `#/definitions/X`), compiled once so recursive schemas work.
    mutating func reference(_ ref: StructuredJSON, path: String) throws -> Int {
        guard let r = ref.stringValue else { throw StructuredOutputError.invalidSchema("$ref at \(path) must be a string") }
        if let rule = refRules[r] { return rule }
        var target = root
        if r != "#" {
            guard r.hasPrefix("#/") else {
                throw StructuredOutputError.unsupportedSchema(keyword: "$ref", detail: "'\(r)' (only local references)")
            }
            for part in r.dropFirst(2).split(separator: "/") {
                let key = part.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
                guard let next = target[key] else { throw StructuredOutputError.invalidSchema("$ref '\(r)' does not resolve") }
                target = next
            }
        }
        let rule = b.declare("ref")
        refRules[r] = rule
        b.define(rule, [try value(target, path: r)])
        return rule
    }
}
