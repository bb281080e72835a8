/// What a request's output must match (vLLM's `StructuredOutputsParams`): it travels inside the
/// engine's `SamplingParams` (and across the engine RPC as JSON) and is compiled into a `Grammar`
/// on each side: by the front-end to reject a bad constraint with a 400, by the engine to decode.
public enum StructuredOutputSpec: Codable, Hashable, Sendable {
    /// A JSON schema, as JSON text.
    case jsonSchema(String)
    /// Any JSON object (`response_format: {"type": "json_object"}`).
    case jsonObject
    case regex(String)
    /// Exactly one of these strings.
    case choice([String])
    /// A GBNF grammar with a `root` rule.
    case grammar(String)

    /// The grammar whose strings are this constraint's outputs.
    public func compileGrammar() throws -> Grammar {
        switch self {
        case .jsonSchema(let text): return try JSONSchemaCompiler.compile(StructuredJSON.parse(text))
        case .jsonObject:
            let b = GrammarBuilder()
            let r = b.declare("root")
            b.define(r, [[b.jsonAnyObject()]])
            return try b.finish(root: r)
        case .regex(let p): return try RegexCompiler.compile(p)
        case .choice(let options):
            guard !options.isEmpty else { throw StructuredOutputError.invalid("choice must not be empty") }
            let b = GrammarBuilder()
            let r = b.declare("root")
            b.define(r, options.map { b.literal($0) })
            return try b.finish(root: r)
        case .grammar(let text): return try GBNFCompiler.compile(text)
        }
    }
}
