import Foundation
import PagodaOpenAI
import PagodaStructured

/// Reads a request's structured-output constraint: OpenAI's `response_format` (`json_object`,
/// `json_schema`), vLLM's `structured_outputs` (`json`, `regex`, `choice`, `grammar`,
/// `json_object`) and the older `guided_json`, `guided_regex`, `guided_choice`, `guided_grammar`.
/// The body is read again as order-keeping JSON so a schema's properties keep their order. At
/// most one constraint per request; a malformed or unsupported one is a 400 naming the field.
enum StructuredOutputRequest {
    /// The undeclared fields this type reads (and `UndeclaredRequestFields` therefore accepts).
    static let fields: Set<String> = [
        "response_format", "structured_outputs", "guided_json", "guided_regex", "guided_choice", "guided_grammar",
        "guided_decoding_backend",
    ]

    /// The constraint of `body`, compiled once here to reject a bad one; nil when there is none.
    static func spec(body: Data) throws -> StructuredOutputSpec? {
        guard let json = try? StructuredJSON.parse(String(decoding: body, as: UTF8.self)) else { return nil }
        var found: [(param: String, spec: StructuredOutputSpec)] = []
        if let rf = json["response_format"], rf != .null {
            let type = rf["type"]?.stringValue
            switch type {
            case "text"?: break
            case "json_object"?: found.append(("response_format", .jsonObject))
            case "json_schema"?:
                guard let schema = rf["json_schema"]?["schema"] ?? rf["json_schema"]?["json_schema"], schema.objectPairs != nil else {
                    throw OpenAIError.badRequest(
                        "response_format.json_schema.schema must be a JSON schema object", param: "response_format")
                }
                found.append(("response_format", .jsonSchema(schema.text)))
            default:
                throw OpenAIError.badRequest(
                    "response_format.type must be 'text', 'json_object' or 'json_schema'", param: "response_format")
            }
        }
        if let so = json["structured_outputs"], so != .null {
            guard let pairs = so.objectPairs else {
                throw OpenAIError.badRequest("structured_outputs must be an object", param: "structured_outputs")
            }
            for (key, value) in pairs where value != .null {
                switch key {
                case "json": found.append(("structured_outputs", try jsonSpec(value, param: "structured_outputs.json")))
                case "regex": found.append(("structured_outputs", .regex(try string(value, "structured_outputs.regex"))))
                case "choice": found.append(("structured_outputs", .choice(try strings(value, "structured_outputs.choice"))))
                case "grammar": found.append(("structured_outputs", .grammar(try string(value, "structured_outputs.grammar"))))
                case "json_object": if value == .bool(true) { found.append(("structured_outputs", .jsonObject)) }
                case "disable_any_whitespace", "disable_fallback", "disable_additional_properties", "whitespace_pattern", "backend":
                    continue  // backend options; Pagoda's one backend emits compact JSON without extra properties
                default:
                    throw OpenAIError.badRequest("structured_outputs.\(key) is not supported", param: "structured_outputs")
                }
            }
        }
        if let v = json["guided_json"], v != .null { found.append(("guided_json", try jsonSpec(v, param: "guided_json"))) }
        if let v = json["guided_regex"], v != .null { found.append(("guided_regex", .regex(try string(v, "guided_regex")))) }
        if let v = json["guided_choice"], v != .null { found.append(("guided_choice", .choice(try strings(v, "guided_choice")))) }
        if let v = json["guided_grammar"], v != .null { found.append(("guided_grammar", .grammar(try string(v, "guided_grammar")))) }
        guard let first = found.first else { return nil }
        if found.count > 1 {
            throw OpenAIError.badRequest(
                "only one kind of structured outputs constraint is allowed, got \(found.map(\.param).joined(separator: ", "))",
                param: found[1].param)
        }
        try check(first.spec, param: first.param)
        return first.spec
    }

    /// Compiles `spec` to reject what the engine could not decode (unsupported schema keywords, bad regexes).
    static func check(_ spec: StructuredOutputSpec, param: String) throws {
        do {
            _ = try spec.compileGrammar()
        } catch {
            throw OpenAIError.badRequest("\(param): \(error)", param: param)
        }
    }

    /// A JSON schema given as an object or as JSON text.
    static func jsonSpec(_ v: StructuredJSON, param: String) throws -> StructuredOutputSpec {
        if let s = v.stringValue {
            do { return .jsonSchema(try StructuredJSON.parse(s).text) } catch {
                throw OpenAIError.badRequest("\(param): \(error)", param: param)
            }
        }
        guard v.objectPairs != nil || v == .bool(true) else { throw OpenAIError.badRequest("\(param) must be a JSON schema", param: param) }
        return .jsonSchema(v.text)
    }

    static func string(_ v: StructuredJSON, _ param: String) throws -> String {
        guard let s = v.stringValue else { throw OpenAIError.badRequest("\(param) must be a string", param: param) }
        return s
    }

    static func strings(_ v: StructuredJSON, _ param: String) throws -> [String] {
        guard let a = v.arrayValue, !a.isEmpty, a.allSatisfy({ $0.stringValue != nil }) else {
            throw OpenAIError.badRequest("\(param) must be a non-empty list of strings", param: param)
        }
        return a.compactMap(\.stringValue)
    }
}
