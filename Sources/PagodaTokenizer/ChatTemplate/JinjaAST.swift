// The parsed template: statements (nodes) and expressions, as jinja2's parser builds them.

/// An expression. Precedence is resolved by the parser; evaluation is in JinjaInterpreter+Expressions.
indirect enum JinjaExpr {
    case literal(JinjaValue)
    case name(String)
    case list([JinjaExpr])
    case tuple([JinjaExpr])
    case dict([(JinjaExpr, JinjaExpr)])
    /// `a.b`: attribute first, then item (jinja2's `getattr`).
    case attribute(JinjaExpr, String)
    /// `a[b]`: item first, then attribute (jinja2's `getitem`).
    case item(JinjaExpr, JinjaExpr)
    case slice(JinjaExpr, start: JinjaExpr?, stop: JinjaExpr?, step: JinjaExpr?)
    case call(JinjaExpr, JinjaCallArgs)
    case filter(JinjaExpr?, name: String, JinjaCallArgs)  // nil input: a `{% filter %}` block's body
    case test(JinjaExpr, name: String, JinjaCallArgs)
    case unary(String, JinjaExpr)  // "-", "+", "not"
    case binary(String, JinjaExpr, JinjaExpr)  // + - * / // % ** ~
    case and(JinjaExpr, JinjaExpr)
    case or(JinjaExpr, JinjaExpr)
    /// `a < b <= c` (Python chains comparisons); ops: == != < <= > >= in notin.
    case compare(JinjaExpr, [(String, JinjaExpr)])
    case conditional(test: JinjaExpr, then: JinjaExpr, otherwise: JinjaExpr?)
}

struct JinjaCallArgs {
    var positional: [JinjaExpr] = []
    var keyword: [(String, JinjaExpr)] = []
    /// `f(*xs)`: a sequence whose items are appended to the positional arguments.
    var splat: JinjaExpr? = nil
}

/// Where a `for` or `set` puts values: a name, a tuple to unpack, or a namespace attribute.
indirect enum JinjaTarget {
    case name(String)
    case tuple([JinjaTarget])
    case namespaceAttribute(String, String)  // set ns.attr = ...
}

/// A macro parameter with its optional default.
struct JinjaParameter {
    let name: String
    let defaultValue: JinjaExpr?
}

final class JinjaMacroDefinition {
    let name: String
    let parameters: [JinjaParameter]
    let body: [JinjaNode]
    init(name: String, parameters: [JinjaParameter], body: [JinjaNode]) {
        self.name = name
        self.parameters = parameters
        self.body = body
    }
}

struct JinjaForLoop {
    let target: JinjaTarget
    let iterable: JinjaExpr
    let condition: JinjaExpr?
    let body: [JinjaNode]
    let elseBody: [JinjaNode]
}

/// A statement or template text. `line` is the template line, for error messages.
indirect enum JinjaNode {
    case text(String)
    case output(JinjaExpr, line: Int)
    case ifChain([(JinjaExpr, [JinjaNode])], elseBody: [JinjaNode], line: Int)
    case forLoop(JinjaForLoop, line: Int)
    case set(JinjaTarget, JinjaExpr, line: Int)
    /// `{% set x %}...{% endset %}` with optional filters applied to the captured text.
    case setBlock(JinjaTarget, body: [JinjaNode], filters: [(String, JinjaCallArgs)], line: Int)
    case macro(JinjaMacroDefinition, line: Int)
    /// `{% call(params) macro(args) %}body{% endcall %}`: `caller(...)` inside the macro renders body.
    case callBlock(JinjaExpr, callerParameters: [JinjaParameter], body: [JinjaNode], line: Int)
    case filterBlock(body: [JinjaNode], filters: [(String, JinjaCallArgs)], line: Int)
    /// `{% with a = 1 %}...{% endwith %}`: a scope with extra variables.
    case with([(JinjaTarget, JinjaExpr)], body: [JinjaNode], line: Int)
    case breakLoop(line: Int)
    case continueLoop(line: Int)
}
