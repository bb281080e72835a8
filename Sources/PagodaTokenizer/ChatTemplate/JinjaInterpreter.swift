// Runs a parsed template: statements write text into an output buffer; scopes follow jinja2's rules.

/// A variable scope. jinja2's rules: `for` bodies and macro calls get a fresh scope per iteration/call
/// (so `set` inside them does not leak out; `namespace` exists for that), `if` does not.
final class JinjaScope {
    private(set) var variables: [String: JinjaValue] = [:]
    let parent: JinjaScope?

    init(parent: JinjaScope?, _ variables: [String: JinjaValue] = [:]) {
        self.parent = parent
        self.variables = variables
    }

    func lookup(_ name: String) -> JinjaValue? {
        var s: JinjaScope? = self
        while let scope = s {
            if let v = scope.variables[name] { return v }
            s = scope.parent
        }
        return nil
    }

    func set(_ name: String, _ value: JinjaValue) { variables[name] = value }

    /// Drops every variable: a macro stored in a scope holds that scope (its defining scope), a cycle that
    /// only this breaks once the render is over.
    func clear() { variables.removeAll() }
}

/// How a statement list finished: normally, or by `{% break %}` / `{% continue %}`.
enum JinjaFlow {
    case normal, breakLoop, continueLoop
}

/// Executes a template AST. One interpreter per render; not shared between threads.
final class JinjaInterpreter {
    /// The template line being executed, attached to errors that have none.
    var line = 0
    /// Guards against runaway recursion (a macro calling itself forever); small enough that a render
    /// fits in a 512 KiB thread stack in a debug build.
    private var callDepth = 0
    static let maxCallDepth = 32

    /// Scopes that hold a macro defined in them (each a reference cycle until the render ends).
    private var macroScopes: [JinjaScope] = []

    func render(_ nodes: [JinjaNode], scope: JinjaScope) throws -> String {
        var out = ""
        defer {
            for s in macroScopes { s.clear() }
            macroScopes.removeAll()
        }
        do {
            _ = try execute(nodes, scope, &out)
        } catch var e as ChatTemplateError {
            if e.line == nil && e.kind != .raised { e.line = line }
            throw e
        }
        return out
    }

    /// Renders a body into a fresh string (set blocks, macros, call and filter blocks).
    func capture(_ nodes: [JinjaNode], _ scope: JinjaScope) throws -> String {
        var out = ""
        _ = try execute(nodes, scope, &out)
        return out
    }

    func execute(_ nodes: [JinjaNode], _ scope: JinjaScope, _ out: inout String) throws -> JinjaFlow {
        for node in nodes {
            switch node {
            case .text(let s):
                out += s
            case .output(let e, let l):
                line = l
                out += try evaluate(e, scope).pythonStr
            case .ifChain(let branches, let elseBody, let l):
                line = l
                var taken = false
                for (cond, body) in branches where try evaluate(cond, scope).isTruthy {
                    taken = true
                    let flow = try execute(body, scope, &out)
                    if flow != .normal { return flow }
                    break
                }
                if !taken {
                    let flow = try execute(elseBody, scope, &out)
                    if flow != .normal { return flow }
                }
            case .forLoop(let loop, let l):
                line = l
                try executeFor(loop, scope, &out)
            case .set(let target, let e, let l):
                line = l
                try assign(target, try evaluate(e, scope), scope)
            case .setBlock(let target, let body, let filters, let l):
                line = l
                var value = JinjaValue.string(try capture(body, JinjaScope(parent: scope)))
                for (name, args) in filters { value = try applyFilter(name, value, args, scope) }
                try assign(target, value, scope)
            case .macro(let def, let l):
                line = l
                scope.set(def.name, .callable(makeMacro(def, scope)))
                macroScopes.append(scope)
            case .callBlock(let callee, let params, let body, let l):
                line = l
                guard case .call(let fn, var args) = callee else { break }
                let callerFn = makeMacro(JinjaMacroDefinition(name: "caller", parameters: params, body: body), scope)
                args.keyword.append(("caller", .literal(.callable(callerFn))))
                out += try evaluate(.call(fn, args), scope).pythonStr
            case .filterBlock(let body, let filters, let l):
                line = l
                var value = JinjaValue.string(try capture(body, JinjaScope(parent: scope)))
                for (name, args) in filters { value = try applyFilter(name, value, args, scope) }
                out += value.pythonStr
            case .with(let assignments, let body, let l):
                line = l
                let inner = JinjaScope(parent: scope)
                for (target, e) in assignments { try assign(target, try evaluate(e, scope), inner) }
                let flow = try execute(body, inner, &out)
                if flow != .normal { return flow }
            case .breakLoop:
                return .breakLoop
            case .continueLoop:
                return .continueLoop
            }
        }
        return .normal
    }

    // MARK: for loops

    private func executeFor(_ loop: JinjaForLoop, _ scope: JinjaScope, _ out: inout String) throws {
        var items = try iterate(try evaluate(loop.iterable, scope))
        if let cond = loop.condition {
            // The filter sees the loop variable but not `loop` (jinja2 evaluates it before counting).
            items = try items.filter { item in
                let s = JinjaScope(parent: scope)
                try assign(loop.target, item, s)
                return try evaluate(cond, s).isTruthy
            }
        }
        if items.isEmpty {
            _ = try execute(loop.elseBody, JinjaScope(parent: scope), &out)
            return
        }
        let n = items.count
        for (i, item) in items.enumerated() {
            let iterationScope = JinjaScope(parent: scope)
            try assign(loop.target, item, iterationScope)
            var info = JinjaDict()
            info["index"] = .int(i + 1)
            info["index0"] = .int(i)
            info["revindex"] = .int(n - i)
            info["revindex0"] = .int(n - i - 1)
            info["first"] = .bool(i == 0)
            info["last"] = .bool(i == n - 1)
            info["length"] = .int(n)
            // depth counts recursive-loop levels only; recursive loops are not supported, so it is 1.
            info["depth"] = .int(1)
            info["depth0"] = .int(0)
            info["previtem"] = i > 0 ? items[i - 1] : .undefined("there is no previous item")
            info["nextitem"] = i < n - 1 ? items[i + 1] : .undefined("there is no next item")
            info["cycle"] = .callable(
                JinjaCallable("cycle") { args, _ in
                    guard !args.positional.isEmpty else { throw ChatTemplateError(.runtime, "no items for cycling given") }
                    return args.positional[i % args.positional.count]
                })
            iterationScope.set("loop", .dict(info))
            let flow = try execute(loop.body, iterationScope, &out)
            if flow == .breakLoop { break }
        }
    }

    /// Python iteration: list/tuple elements, string characters, dict keys; Undefined iterates as empty.
    func iterate(_ value: JinjaValue) throws -> [JinjaValue] { try Self.iterateStatic(value) }

    // MARK: assignment

    func assign(_ target: JinjaTarget, _ value: JinjaValue, _ scope: JinjaScope) throws {
        switch target {
        case .name(let n):
            scope.set(n, value)
        case .tuple(let targets):
            let values = try iterate(value)
            guard values.count == targets.count else {
                throw ChatTemplateError(
                    .runtime,
                    values.count > targets.count
                        ? "too many values to unpack (expected \(targets.count))"
                        : "not enough values to unpack (expected \(targets.count), got \(values.count))")
            }
            for (t, v) in zip(targets, values) { try assign(t, v, scope) }
        case .namespaceAttribute(let name, let attr):
            guard case .namespace(let ns) = scope.lookup(name) ?? .undefined("") else {
                throw ChatTemplateError(.runtime, "cannot assign attribute on non-namespace object")
            }
            ns.attributes[attr] = value
        }
    }

    // MARK: macros

    /// A macro call binds parameters in a fresh scope under the defining scope and returns its output.
    func makeMacro(_ def: JinjaMacroDefinition, _ definingScope: JinjaScope) -> JinjaCallable {
        JinjaCallable(def.name) { args, interp in
            guard args.positional.count <= def.parameters.count else {
                throw ChatTemplateError(.runtime, "macro '\(def.name)' takes not more than \(def.parameters.count) argument(s)")
            }
            let scope = JinjaScope(parent: definingScope)
            var bound = Set<String>()
            for (i, v) in args.positional.enumerated() {
                scope.set(def.parameters[i].name, v)
                bound.insert(def.parameters[i].name)
            }
            for (k, v) in args.keyword {
                if k == "caller" {
                    scope.set(k, v)
                    continue
                }
                guard def.parameters.contains(where: { $0.name == k }) else {
                    throw ChatTemplateError(.runtime, "macro '\(def.name)' takes no keyword argument '\(k)'")
                }
                if bound.contains(k) { throw ChatTemplateError(.runtime, "macro '\(def.name)' got multiple values for argument '\(k)'") }
                scope.set(k, v)
                bound.insert(k)
            }
            for p in def.parameters where !bound.contains(p.name) {
                if let d = p.defaultValue {
                    scope.set(p.name, try interp.evaluate(d, scope))
                } else {
                    scope.set(p.name, .undefined("parameter '\(p.name)' was not provided"))
                }
            }
            interp.callDepth += 1
            defer { interp.callDepth -= 1 }
            guard interp.callDepth <= Self.maxCallDepth else { throw ChatTemplateError(.runtime, "maximum macro recursion depth exceeded") }
            return .string(try interp.capture(def.body, scope))
        }
    }
}
