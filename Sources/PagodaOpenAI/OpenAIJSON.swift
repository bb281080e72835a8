import Foundation

/// JSON coding for the OpenAI wire types: request decoding that turns every failure into a 400
/// naming the parameter, and response encoding without escaped slashes.
public enum OpenAIJSON {
    public static func encode<T: Encodable>(_ value: T) throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]  // stable key order for humans and diffs
        return try e.encode(value)
    }

    /// Decodes a request body; malformed JSON or a field of the wrong type is a 400 `OpenAIError`
    /// whose `param` names the field.
    public static func decodeRequest<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        if data.isEmpty { throw OpenAIError.badRequest("request body is empty; expected a JSON object") }
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch let error as DecodingError {
            throw describe(error)
        } catch {
            throw OpenAIError.badRequest("invalid JSON body: \(error)")
        }
    }

    /// `decodeRequest` for a body type that names its fields: also returns the fields it does not
    /// declare, for the server to reject or log.
    public static func decodeRequestFields<T: OpenAIRequestBody>(_ type: T.Type, from data: Data) throws -> DecodedRequest<T> {
        try decodeRequest(DecodedRequest<T>.self, from: data)
    }

    static func describe(_ error: DecodingError) -> OpenAIError {
        func path(_ p: [CodingKey]) -> String? {
            let s = p.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
                .reduce("") { acc, k in k.hasPrefix("[") || acc.isEmpty ? acc + k : acc + "." + k }
            return s.isEmpty ? nil : s
        }
        switch error {
        case .dataCorrupted(let ctx):
            if ctx.codingPath.isEmpty {
                return .badRequest("malformed JSON body: \(ctx.underlyingError.map { "\($0)" } ?? ctx.debugDescription)")
            }
            let p = path(ctx.codingPath)
            return .badRequest("invalid value for '\(p ?? "?")': \(ctx.debugDescription)", param: p)
        case .keyNotFound(let key, let ctx):
            let p = path(ctx.codingPath + [key])
            return .badRequest("missing required field '\(p ?? key.stringValue)'", param: p)
        case .typeMismatch(let type, let ctx):
            let p = path(ctx.codingPath)
            if p == nil { return .badRequest("request body must be a JSON object") }
            return .badRequest("invalid type for '\(p!)': expected \(typeName(type))", param: p)
        case .valueNotFound(let type, let ctx):
            let p = path(ctx.codingPath)
            return .badRequest("'\(p ?? "?")' must not be null (expected \(typeName(type)))", param: p)
        @unknown default:
            return .badRequest("invalid request body: \(error)")
        }
    }

    private static func typeName(_ t: Any.Type) -> String {
        switch t {
        case is Int.Type: return "an integer"
        case is Double.Type, is Float.Type: return "a number"
        case is String.Type: return "a string"
        case is Bool.Type: return "a boolean"
        default:
            let n = "\(t)"
            if n.hasPrefix("Array") { return "a list" }
            if n.hasPrefix("Dictionary") { return "an object" }
            if n == "PromptInput" { return "a string, a list of strings or a list of token ids" }
            return n
        }
    }
}
