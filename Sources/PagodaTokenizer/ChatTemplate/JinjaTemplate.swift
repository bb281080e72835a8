// The public entry point: parse a template once, render it many times.

/// A parsed Jinja template, rendered the way transformers' `apply_chat_template` renders chat
/// templates (jinja2 ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loop controls,
/// `{% generation %}`, globals raise_exception/strftime_now/namespace/dict/range).
///
/// Immutable after init, so one template may be rendered from many threads at once.
public struct JinjaTemplate: @unchecked Sendable {
    let nodes: [JinjaNode]

    /// Parses `source`; a syntax error throws `ChatTemplateError` (kind `.syntax`) naming the line.
    public init(source: String) throws {
        nodes = try JinjaParser.parse(source)
    }

    /// Renders with `context` as the template's variables. A variable not in `context` is Undefined.
    public func render(_ context: [String: JinjaValue]) throws -> String {
        let globals = JinjaScope(parent: nil, JinjaGlobals.make())
        let top = JinjaScope(parent: globals, context)
        return try JinjaInterpreter().render(nodes, scope: top)
    }
}
