// The public entry point: parse a template once, render it many times.

/// A parsed Jinja template, rendered the way transformers' `apply_chat_template` renders chat
/// templates (jinja2 ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loop controls,
/// `{% generation %}`, globals raise_exception/strftime_now/namespace/dict/range).
///
/// Immutable after init, so one template may be rendered from many threads at once.
///
/// Pipeline: `JinjaLexer` (whitespace control) -> `JinjaParser` (AST in JinjaAST) -> `JinjaInterpreter`
/// (scopes, Python operator semantics) with `jinjaFilters`, `jinjaTests`, `boundMethod` (str/dict/list
/// methods) and `JinjaGlobals`. Checked against jinja2 3.1.6 on the conformance templates and on
/// oracle-generated cases (ChatTemplate*Tests).
///
/// Not supported (a clear error, never a wrong render): `include`/`extends`/`import`/`block`, recursive
/// `for` loops, `**kwargs` in calls, macro `varargs`/`kwargs`. Known differences from jinja2: dict keys are
/// strings (a non-string literal key becomes its `str()`), integers are 64-bit (overflow becomes a float),
/// `|items` on a non-mapping raises instead of returning a generator, and nesting (64 levels), macro
/// recursion (32) and `*` repetition (16 M) are bounded so hostile templates cannot exhaust the stack or memory.
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
