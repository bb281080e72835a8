/// Why a structured-output request cannot be served: a malformed or unsupported schema, regex or
/// grammar. The server turns it into a 400 naming `param` and the offending feature.
public enum StructuredOutputError: Error, Equatable, CustomStringConvertible {
    /// The text is not JSON.
    case invalidJSON(String)
    /// A JSON-schema keyword (or value) the grammar compiler does not implement.
    case unsupportedSchema(keyword: String, detail: String)
    /// The schema is malformed (wrong type for a keyword, dangling `$ref`).
    case invalidSchema(String)
    /// A regex the compiler does not accept, with the reason.
    case invalidRegex(String)
    /// A grammar (GBNF) that does not parse or refers to an undefined rule.
    case invalidGrammar(String)
    /// Any other request-level problem (empty choice list, left recursion).
    case invalid(String)

    public var description: String {
        switch self {
        case .invalidJSON(let s): return "invalid JSON: \(s)"
        case .unsupportedSchema(let k, let d): return "unsupported JSON schema keyword '\(k)'" + (d.isEmpty ? "" : ": \(d)")
        case .invalidSchema(let s): return "invalid JSON schema: \(s)"
        case .invalidRegex(let s): return "invalid or unsupported regex: \(s)"
        case .invalidGrammar(let s): return "invalid grammar: \(s)"
        case .invalid(let s): return s
        }
    }
}
