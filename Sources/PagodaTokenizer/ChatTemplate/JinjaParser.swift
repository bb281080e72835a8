// Tokens -> AST, following jinja2's parser (jinja2/parser.py): the same statement set and the same
// expression precedence, lowest first:
//   x if c else y  <  or  <  and  <  not  <  comparisons/in  <  + -  <  ~  <  * / // %  <  **
//   <  unary - +  <  filters `|`, tests `is`, calls  <  postfix . [] ()  <  primary

/// Recursive-descent parser over `JinjaLexer` tokens.
struct JinjaParser {
    private let tokens: [JinjaToken]
    private var pos = 0
    /// How many `for` loops enclose the statement being parsed (break/continue need one).
    private var loopDepth = 0
    /// Current nesting of expressions and blocks. Bounded so a hostile template (a request may carry
    /// its own) cannot overflow the stack of the thread that parses or renders it.
    private var nesting = 0
    static let maxNesting = 64

    private mutating func enter() throws {
        nesting += 1
        if nesting > Self.maxNesting { throw fail("template nesting is deeper than \(Self.maxNesting) levels") }
    }

    static func parse(_ source: String) throws -> [JinjaNode] {
        var parser = JinjaParser(tokens: try JinjaLexer.tokenize(source))
        let (body, end) = try parser.parseBody(until: [])
        if let end = end { throw parser.fail("unexpected '\(end)'") }
        return body
    }

    private init(tokens: [JinjaToken]) { self.tokens = tokens }

    // MARK: token helpers

    private var current: JinjaToken { tokens[pos] }
    private var line: Int { current.line }

    private func peek(_ offset: Int = 1) -> JinjaTokenKind {
        pos + offset < tokens.count ? tokens[pos + offset].kind : .eof
    }

    private func fail(_ message: String, line: Int? = nil) -> ChatTemplateError {
        ChatTemplateError(.syntax, message, line: line ?? self.line)
    }

    private mutating func next() -> JinjaToken {
        let t = tokens[pos]
        if pos < tokens.count - 1 { pos += 1 }
        return t
    }

    private func isOp(_ op: String) -> Bool { current.kind == .op(op) }
    private func isName(_ name: String) -> Bool { current.kind == .name(name) }

    private mutating func skipOp(_ op: String) -> Bool {
        if isOp(op) {
            pos += 1
            return true
        }
        return false
    }

    private mutating func skipName(_ name: String) -> Bool {
        if isName(name) {
            pos += 1
            return true
        }
        return false
    }

    private mutating func expectOp(_ op: String) throws {
        guard skipOp(op) else { throw fail("expected '\(op)', got \(describe(current.kind))") }
    }

    private mutating func expectName() throws -> String {
        guard case .name(let n) = current.kind else { throw fail("expected a name, got \(describe(current.kind))") }
        pos += 1
        return n
    }

    private mutating func expectBlockEnd() throws {
        guard current.kind == .blockEnd else { throw fail("expected end of statement block, got \(describe(current.kind))") }
        pos += 1
    }

    private func describe(_ kind: JinjaTokenKind) -> String {
        switch kind {
        case .text: return "template text"
        case .variableBegin: return "'{{'"
        case .variableEnd: return "end of print statement '}}'"
        case .blockBegin: return "'{%'"
        case .blockEnd: return "end of statement block '%}'"
        case .name(let n): return "'\(n)'"
        case .string(let s): return "string '\(s)'"
        case .integer(let i): return "integer \(i)"
        case .float(let d): return "float \(d)"
        case .op(let o): return "'\(o)'"
        case .eof: return "end of template"
        }
    }

    // MARK: statements

    /// Parses nodes until `{% name %}` with a name in `until` (position left after that name) or the end.
    private mutating func parseBody(until: Set<String>) throws -> ([JinjaNode], String?) {
        var nodes: [JinjaNode] = []
        while true {
            switch current.kind {
            case .eof:
                if !until.isEmpty {
                    throw fail("unexpected end of template; expected " + until.sorted().map { "'\($0)'" }.joined(separator: " or "))
                }
                return (nodes, nil)
            case .text(let s):
                pos += 1
                nodes.append(.text(s))
            case .variableBegin:
                let l = line
                pos += 1
                let e = try parseTuple()
                guard current.kind == .variableEnd else { throw fail("expected end of print statement, got \(describe(current.kind))") }
                pos += 1
                nodes.append(.output(e, line: l))
            case .blockBegin:
                pos += 1
                guard case .name(let keyword) = current.kind else { throw fail("expected a statement name, got \(describe(current.kind))") }
                if until.contains(keyword) {
                    pos += 1
                    return (nodes, keyword)
                }
                if keyword.hasPrefix("end") || keyword == "elif" || keyword == "else" {
                    let expected = until.sorted().map { "'\($0)'" }.joined(separator: " or ")
                    throw fail("unexpected '\(keyword)'" + (until.isEmpty ? "" : "; expected \(expected)"))
                }
                if let node = try parseStatement(keyword) { nodes.append(node) }
            default:
                throw fail("unexpected \(describe(current.kind))")
            }
        }
    }

    private mutating func parseStatement(_ keyword: String) throws -> JinjaNode? {
        try enter()
        defer { nesting -= 1 }
        let l = line
        pos += 1  // the keyword
        switch keyword {
        case "if":
            var branches: [(JinjaExpr, [JinjaNode])] = []
            var cond = try parseTuple()
            while true {
                try expectBlockEnd()
                let (body, end) = try parseBody(until: ["elif", "else", "endif"])
                branches.append((cond, body))
                if end == "elif" {
                    cond = try parseTuple()
                    continue
                }
                var elseBody: [JinjaNode] = []
                if end == "else" {
                    try expectBlockEnd()
                    (elseBody, _) = try parseBody(until: ["endif"])
                }
                try expectBlockEnd()
                return .ifChain(branches, elseBody: elseBody, line: l)
            }
        case "for":
            let target = try parseAssignTarget(allowNamespace: false, extraEnd: ["in"])
            guard skipName("in") else { throw fail("expected 'in' in for loop") }
            let iterable = try parseTuple(withCondition: false, extraEnd: ["recursive"])
            var condition: JinjaExpr? = nil
            if skipName("if") { condition = try parseExpression() }
            if isName("recursive") { throw fail("recursive for loops are not supported") }
            try expectBlockEnd()
            loopDepth += 1
            let (body, end) = try parseBody(until: ["endfor", "else"])
            loopDepth -= 1
            var elseBody: [JinjaNode] = []
            if end == "else" {
                try expectBlockEnd()
                (elseBody, _) = try parseBody(until: ["endfor"])
            }
            try expectBlockEnd()
            return .forLoop(JinjaForLoop(target: target, iterable: iterable, condition: condition, body: body, elseBody: elseBody), line: l)
        case "set":
            let target = try parseAssignTarget(allowNamespace: true, extraEnd: [])
            if skipOp("=") {
                let value = try parseTuple()
                try expectBlockEnd()
                return .set(target, value, line: l)
            }
            let filters = try parseFilterChain()
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endset"])
            try expectBlockEnd()
            return .setBlock(target, body: body, filters: filters, line: l)
        case "macro":
            let name = try expectName()
            let params = try parseParameters()
            try expectBlockEnd()
            let saved = loopDepth
            loopDepth = 0
            let (body, _) = try parseBody(until: ["endmacro"])
            loopDepth = saved
            if case .name = current.kind { pos += 1 }  // `{% endmacro name %}` is allowed
            try expectBlockEnd()
            return .macro(JinjaMacroDefinition(name: name, parameters: params, body: body), line: l)
        case "call":
            let params = isOp("(") ? try parseParameters() : []
            let callee = try parseExpression()
            guard case .call = callee else { throw fail("expected a call after 'call'") }
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endcall"])
            try expectBlockEnd()
            return .callBlock(callee, callerParameters: params, body: body, line: l)
        case "filter":
            let filters = try parseFilterChain(first: true)
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endfilter"])
            try expectBlockEnd()
            return .filterBlock(body: body, filters: filters, line: l)
        case "with":
            var assignments: [(JinjaTarget, JinjaExpr)] = []
            while current.kind != .blockEnd {
                if !assignments.isEmpty { try expectOp(",") }
                let target = try parseAssignTarget(allowNamespace: false, extraEnd: [])
                try expectOp("=")
                assignments.append((target, try parseExpression()))
            }
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endwith"])
            try expectBlockEnd()
            return .with(assignments, body: body, line: l)
        case "generation":
            // transformers' {% generation %} tag only marks assistant text for masks: render the body as is.
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endgeneration"])
            try expectBlockEnd()
            return .with([], body: body, line: l)
        case "break", "continue":
            guard loopDepth > 0 else { throw fail("'\(keyword)' outside of a for loop", line: l) }
            try expectBlockEnd()
            return keyword == "break" ? .breakLoop(line: l) : .continueLoop(line: l)
        case "include", "extends", "import", "from", "block":
            throw fail("'\(keyword)' is not supported in chat templates", line: l)
        default:
            throw fail("unknown tag '\(keyword)'", line: l)
        }
    }

    /// `name`, `a, b`, `(a, b)`, or (for set) `ns.attr`.
    private mutating func parseAssignTarget(allowNamespace: Bool, extraEnd: Set<String>) throws -> JinjaTarget {
        func single(_ p: inout JinjaParser) throws -> JinjaTarget {
            if p.skipOp("(") {
                var items: [JinjaTarget] = []
                while !p.isOp(")") {
                    if !items.isEmpty { try p.expectOp(",") }
                    if p.isOp(")") { break }
                    items.append(try single(&p))
                }
                try p.expectOp(")")
                return .tuple(items)
            }
            let name = try p.expectName()
            if allowNamespace, p.skipOp(".") {
                return .namespaceAttribute(name, try p.expectName())
            }
            guard !["true", "false", "none", "True", "False", "None"].contains(name) else {
                throw p.fail("can't assign to literal '\(name)'")
            }
            return .name(name)
        }
        var targets = [try single(&self)]
        var isTuple = false
        while skipOp(",") {
            isTuple = true
            if case .name(let n) = current.kind, extraEnd.contains(n) { break }
            if isOp("=") || current.kind == .blockEnd { break }
            targets.append(try single(&self))
        }
        return isTuple ? .tuple(targets) : targets[0]
    }

    /// `(a, b='x')` for macros and call blocks.
    private mutating func parseParameters() throws -> [JinjaParameter] {
        try expectOp("(")
        var params: [JinjaParameter] = []
        while !isOp(")") {
            if !params.isEmpty { try expectOp(",") }
            if isOp(")") { break }
            let name = try expectName()
            var def: JinjaExpr? = nil
            if skipOp("=") {
                def = try parseExpression()
            } else if params.last?.defaultValue != nil {
                throw fail("non-default argument '\(name)' follows default argument")
            }
            params.append(JinjaParameter(name: name, defaultValue: def))
        }
        try expectOp(")")
        return params
    }

    /// `| f(args) | g` after `set x` (first: the leading `|` is absent, as in `{% filter f %}`).
    private mutating func parseFilterChain(first: Bool = false) throws -> [(String, JinjaCallArgs)] {
        var out: [(String, JinjaCallArgs)] = []
        var needPipe = !first
        while true {
            if needPipe && !skipOp("|") { break }
            needPipe = true
            let name = try parseDottedName()
            let args = isOp("(") ? try parseCallArgs() : JinjaCallArgs()
            out.append((name, args))
        }
        return out
    }

    private mutating func parseDottedName() throws -> String {
        var name = try expectName()
        while isOp("."), case .name(let more) = peek() {
            pos += 2
            name += "." + more
        }
        return name
    }

    // MARK: expressions

    /// jinja2's parse_tuple: `a` or `a, b` (a tuple) up to the end of the tag.
    private mutating func parseTuple(withCondition: Bool = true, extraEnd: Set<String> = [], explicitParens: Bool = false) throws -> JinjaExpr {
        var items: [JinjaExpr] = []
        var isTuple = false
        while true {
            if !items.isEmpty { try expectOp(",") }
            if isTupleEnd(extraEnd) { break }
            items.append(withCondition ? try parseExpression() : try parseOr())
            if isOp(",") {
                isTuple = true
            } else {
                break
            }
        }
        if !isTuple {
            if let only = items.first { return only }
            if !explicitParens { throw fail("expected an expression, got \(describe(current.kind))") }
        }
        return .tuple(items)
    }

    private func isTupleEnd(_ extraEnd: Set<String>) -> Bool {
        switch current.kind {
        case .variableEnd, .blockEnd, .eof: return true
        case .op(")"): return true
        case .name(let n): return extraEnd.contains(n)
        default: return false
        }
    }

    mutating func parseExpression() throws -> JinjaExpr {
        try enter()
        defer { nesting -= 1 }
        var expr = try parseOr()
        while skipName("if") {
            let cond = try parseOr()
            let otherwise = skipName("else") ? try parseExpression() : nil
            expr = .conditional(test: cond, then: expr, otherwise: otherwise)
        }
        return expr
    }

    private mutating func parseOr() throws -> JinjaExpr {
        var left = try parseAnd()
        while skipName("or") { left = .or(left, try parseAnd()) }
        return left
    }

    private mutating func parseAnd() throws -> JinjaExpr {
        var left = try parseNot()
        while skipName("and") { left = .and(left, try parseNot()) }
        return left
    }

    private mutating func parseNot() throws -> JinjaExpr {
        if skipName("not") {
            try enter()
            defer { nesting -= 1 }
            return .unary("not", try parseNot())
        }
        return try parseCompare()
    }

    private mutating func parseCompare() throws -> JinjaExpr {
        let first = try parseMath1()
        var ops: [(String, JinjaExpr)] = []
        while true {
            if case .op(let o) = current.kind, ["==", "!=", "<", "<=", ">", ">="].contains(o) {
                pos += 1
                ops.append((o, try parseMath1()))
            } else if skipName("in") {
                ops.append(("in", try parseMath1()))
            } else if isName("not"), peek() == .name("in") {
                pos += 2
                ops.append(("notin", try parseMath1()))
            } else {
                break
            }
        }
        return ops.isEmpty ? first : .compare(first, ops)
    }

    private mutating func parseMath1() throws -> JinjaExpr {
        var left = try parseConcat()
        while case .op(let o) = current.kind, o == "+" || o == "-" {
            pos += 1
            left = .binary(o, left, try parseConcat())
        }
        return left
    }

    private mutating func parseConcat() throws -> JinjaExpr {
        var left = try parseMath2()
        while skipOp("~") { left = .binary("~", left, try parseMath2()) }
        return left
    }

    private mutating func parseMath2() throws -> JinjaExpr {
        var left = try parsePow()
        while case .op(let o) = current.kind, ["*", "/", "//", "%"].contains(o) {
            pos += 1
            left = .binary(o, left, try parsePow())
        }
        return left
    }

    private mutating func parsePow() throws -> JinjaExpr {
        var left = try parseUnary()
        while skipOp("**") { left = .binary("**", left, try parseUnary()) }
        return left
    }

    private mutating func parseUnary(withFilter: Bool = true) throws -> JinjaExpr {
        try enter()
        defer { nesting -= 1 }
        var node: JinjaExpr
        if skipOp("-") {
            node = .unary("-", try parseUnary(withFilter: false))
        } else if skipOp("+") {
            node = .unary("+", try parseUnary(withFilter: false))
        } else {
            node = try parsePrimary()
        }
        node = try parsePostfix(node)
        if withFilter { node = try parseFilterExpr(node) }
        return node
    }

    private mutating func parsePrimary() throws -> JinjaExpr {
        let t = next()
        switch t.kind {
        case .name(let n):
            switch n {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.null)
            default: return .name(n)
            }
        case .string(var s):
            while case .string(let more) = current.kind {  // adjacent literals concatenate
                s += more
                pos += 1
            }
            return .literal(.string(s))
        case .integer(let i): return .literal(.int(i))
        case .float(let d): return .literal(.float(d))
        case .op("("):
            let e = try parseTuple(explicitParens: true)
            try expectOp(")")
            return e
        case .op("["):
            var items: [JinjaExpr] = []
            while !isOp("]") {
                if !items.isEmpty { try expectOp(",") }
                if isOp("]") { break }
                items.append(try parseExpression())
            }
            try expectOp("]")
            return .list(items)
        case .op("{"):
            var items: [(JinjaExpr, JinjaExpr)] = []
            while !isOp("}") {
                if !items.isEmpty { try expectOp(",") }
                if isOp("}") { break }
                let k = try parseExpression()
                try expectOp(":")
                items.append((k, try parseExpression()))
            }
            try expectOp("}")
            return .dict(items)
        default:
            throw fail("unexpected \(describe(t.kind))", line: t.line)
        }
    }

    private mutating func parsePostfix(_ start: JinjaExpr) throws -> JinjaExpr {
        var node = start
        while true {
            if isOp(".") || isOp("[") {
                node = try parseSubscript(node)
            } else if isOp("(") {
                node = .call(node, try parseCallArgs())
            } else {
                return node
            }
        }
    }

    private mutating func parseFilterExpr(_ start: JinjaExpr) throws -> JinjaExpr {
        var node = start
        while true {
            if skipOp("|") {
                let name = try parseDottedName()
                let args = isOp("(") ? try parseCallArgs() : JinjaCallArgs()
                node = .filter(node, name: name, args)
            } else if isName("is") {
                node = try parseTest(node)
            } else if isOp("(") {
                node = .call(node, try parseCallArgs())
            } else {
                return node
            }
        }
    }

    private mutating func parseTest(_ node: JinjaExpr) throws -> JinjaExpr {
        pos += 1  // is
        let negated = skipName("not")
        let name = try parseDottedName()
        var args = JinjaCallArgs()
        if isOp("(") {
            args = try parseCallArgs()
        } else {
            switch current.kind {
            case .name(let n) where !["else", "or", "and"].contains(n):
                if n == "is" { throw fail("You cannot chain multiple tests with is") }
                args.positional = [try parsePostfix(try parsePrimary())]
            case .string, .integer, .float, .op("("), .op("["), .op("{"):
                args.positional = [try parsePostfix(try parsePrimary())]
            default: break
            }
        }
        let test = JinjaExpr.test(node, name: name, args)
        return negated ? .unary("not", test) : test
    }

    private mutating func parseSubscript(_ node: JinjaExpr) throws -> JinjaExpr {
        if skipOp(".") {
            let t = next()
            switch t.kind {
            case .name(let n): return .attribute(node, n)
            case .integer(let i): return .item(node, .literal(.int(i)))
            default: throw fail("expected name or number after '.'", line: t.line)
            }
        }
        try expectOp("[")
        var items: [JinjaExpr] = []
        while !isOp("]") {
            if !items.isEmpty { try expectOp(",") }
            items.append(try parseSubscribed())
        }
        try expectOp("]")
        guard !items.isEmpty else { throw fail("expected a subscript expression") }
        if items.count == 1 {
            if case .slice(_, let a, let b, let c) = items[0] { return .slice(node, start: a, stop: b, step: c) }
            return .item(node, items[0])
        }
        return .item(node, .tuple(items))
    }

    /// One subscript: an expression, or a slice `a:b:c` (returned as `.slice` on a placeholder).
    private mutating func parseSubscribed() throws -> JinjaExpr {
        var parts: [JinjaExpr?] = []
        if isOp(":") {
            pos += 1
            parts = [nil]
        } else {
            let e = try parseExpression()
            guard skipOp(":") else { return e }
            parts = [e]
        }
        // stop
        if isOp("]") || isOp(",") {
            parts.append(nil)
        } else if isOp(":") {
            parts.append(nil)
        } else {
            parts.append(try parseExpression())
        }
        // step
        if skipOp(":") {
            parts.append(isOp("]") || isOp(",") ? nil : try parseExpression())
        } else {
            parts.append(nil)
        }
        return .slice(.literal(.null), start: parts[0], stop: parts[1], step: parts[2])
    }

    private mutating func parseCallArgs() throws -> JinjaCallArgs {
        try expectOp("(")
        var args = JinjaCallArgs()
        var first = true
        while !isOp(")") {
            if !first { try expectOp(",") }
            first = false
            if isOp(")") { break }
            if isOp("*"), args.splat == nil {
                pos += 1
                args.splat = try parseExpression()
                continue
            }
            if isOp("*") || isOp("**") { throw fail("**kwargs and repeated *args in calls are not supported") }
            if case .name(let n) = current.kind, peek() == .op("=") {
                pos += 2
                args.keyword.append((n, try parseExpression()))
            } else {
                if !args.keyword.isEmpty { throw fail("positional argument follows keyword argument") }
                args.positional.append(try parseExpression())
            }
        }
        try expectOp(")")
        return args
    }
}
