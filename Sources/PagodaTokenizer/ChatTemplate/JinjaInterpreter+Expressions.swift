// Expression evaluation with Python's operator semantics and jinja2's attribute/item lookup.

extension JinjaInterpreter {
    func evaluate(_ expr: JinjaExpr, _ scope: JinjaScope) throws -> JinjaValue {
        switch expr {
        case .literal(let v):
            return v
        case .name(let n):
            return scope.lookup(n) ?? .undefined("'\(n)' is undefined")
        case .list(let items):
            return .list(try items.map { try evaluate($0, scope) })
        case .tuple(let items):
            return .tuple(try items.map { try evaluate($0, scope) })
        case .dict(let pairs):
            var d = JinjaDict()
            for (k, v) in pairs {
                let key = try evaluate(k, scope)
                d[key.pythonStr] = try evaluate(v, scope)
            }
            return .dict(d)
        case .attribute(let obj, let name):
            return try getAttribute(try evaluate(obj, scope), name)
        case .item(let obj, let key):
            return try getItem(try evaluate(obj, scope), try evaluate(key, scope))
        case .slice(let obj, let start, let stop, let step):
            let value = try evaluate(obj, scope)
            return try slice(
                value, start: try start.map { try evaluate($0, scope) }, stop: try stop.map { try evaluate($0, scope) },
                step: try step.map { try evaluate($0, scope) })
        case .call(let fn, let args):
            let callee = try evaluate(fn, scope)
            return try call(callee, try evaluateArgs(args, scope))
        case .filter(let input, let name, let args):
            let value = try input.map { try evaluate($0, scope) } ?? .undefined("")
            return try applyFilter(name, value, args, scope)
        case .test(let input, let name, let args):
            return .bool(try applyTest(name, try evaluate(input, scope), try evaluateArgs(args, scope)))
        case .unary(let op, let operand):
            let v = try evaluate(operand, scope)
            switch op {
            case "not": return .bool(!v.isTruthy)
            case "-":
                switch v {
                case .int(let i): return .int(-i)
                case .bool(let b): return .int(b ? -1 : 0)
                case .float(let d): return .float(-d)
                case .undefined(let msg): throw ChatTemplateError(.undefined, msg)
                default: throw ChatTemplateError(.runtime, "bad operand type for unary -: '\(v.typeName)'")
                }
            default:
                switch v {
                case .int, .float: return v
                case .bool(let b): return .int(b ? 1 : 0)
                case .undefined(let msg): throw ChatTemplateError(.undefined, msg)
                default: throw ChatTemplateError(.runtime, "bad operand type for unary +: '\(v.typeName)'")
                }
            }
        case .binary(let op, let l, let r):
            return try binary(op, try evaluate(l, scope), try evaluate(r, scope))
        case .and(let l, let r):
            let left = try evaluate(l, scope)
            return left.isTruthy ? try evaluate(r, scope) : left
        case .or(let l, let r):
            let left = try evaluate(l, scope)
            return left.isTruthy ? left : try evaluate(r, scope)
        case .compare(let first, let ops):
            var left = try evaluate(first, scope)
            for (op, e) in ops {
                let right = try evaluate(e, scope)
                guard try compare(op, left, right) else { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .conditional(let test, let then, let otherwise):
            if try evaluate(test, scope).isTruthy { return try evaluate(then, scope) }
            return try otherwise.map { try evaluate($0, scope) } ?? .undefined("the inline if-expression evaluated to false and no else section was defined")
        }
    }

    func evaluateArgs(_ args: JinjaCallArgs, _ scope: JinjaScope) throws -> JinjaArguments {
        var positional = try args.positional.map { try evaluate($0, scope) }
        if let splat = args.splat { positional += try iterate(try evaluate(splat, scope)) }
        return JinjaArguments(positional, keyword: try args.keyword.map { ($0.0, try evaluate($0.1, scope)) })
    }

    func call(_ callee: JinjaValue, _ args: JinjaArguments) throws -> JinjaValue {
        switch callee {
        case .callable(let fn): return try fn.body(args, self)
        case .undefined(let msg): throw ChatTemplateError(.undefined, msg)
        default: throw ChatTemplateError(.runtime, "'\(callee.typeName)' object is not callable")
        }
    }

    // MARK: lookup

    /// `obj.name`: jinja2 tries the Python attribute (methods, namespace attributes) first, then the item.
    func getAttribute(_ obj: JinjaValue, _ name: String) throws -> JinjaValue {
        switch obj {
        case .undefined(let msg):
            throw ChatTemplateError(.undefined, msg)
        case .dict(let d):
            if let m = boundMethod(obj, name) { return .callable(m) }
            if let v = d[name] { return v }
        case .namespace(let ns):
            if let v = ns.attributes[name] { return v }
        default:
            if let m = boundMethod(obj, name) { return .callable(m) }
        }
        return .undefined(Self.noAttributeMessage(obj, "'\(name)'"))
    }

    /// `obj[key]`: jinja2 tries the item first, then (for a string key) the attribute.
    func getItem(_ obj: JinjaValue, _ key: JinjaValue) throws -> JinjaValue {
        switch (obj, key) {
        case (.undefined(let msg), _):
            throw ChatTemplateError(.undefined, msg)
        case (.dict(let d), .string(let k)):
            if let v = d[k] { return v }
        case (.list(let a), _), (.tuple(let a), _):
            if let i = key.integerValue {
                let idx = i < 0 ? i + a.count : i
                if idx >= 0 && idx < a.count { return a[idx] }
            }
        case (.string(let s), _):
            if let i = key.integerValue {
                let scalars = Array(s.unicodeScalars)
                let idx = i < 0 ? i + scalars.count : i
                if idx >= 0 && idx < scalars.count { return .string(String(scalars[idx])) }
            }
        case (.namespace(let ns), .string(let k)):
            if let v = ns.attributes[k] { return v }
        default:
            break
        }
        if case .string(let k) = key {
            if case .dict = obj {
                if let m = boundMethod(obj, k) { return .callable(m) }
            } else if case .namespace = obj {
            } else if let m = boundMethod(obj, k) {
                return .callable(m)
            }
            return .undefined(Self.noAttributeMessage(obj, "'\(k)'"))
        }
        return .undefined(Self.noAttributeMessage(obj, key.pythonRepr))
    }

    /// jinja2's Undefined hint: "'dict object' has no attribute 'x'".
    static func noAttributeMessage(_ obj: JinjaValue, _ what: String) -> String {
        if obj.isNone { return "'None' has no attribute \(what)" }
        return "'\(obj.typeName) object' has no attribute \(what)"
    }

    /// Python slicing `obj[start:stop:step]` of lists, tuples and strings (by code point).
    func slice(_ obj: JinjaValue, start: JinjaValue?, stop: JinjaValue?, step: JinjaValue?) throws -> JinjaValue {
        func bound(_ v: JinjaValue?) throws -> Int? {
            guard let v = v, !v.isNone else { return nil }
            guard let i = v.integerValue else {
                if case .undefined(let msg) = v { throw ChatTemplateError(.undefined, msg) }
                throw ChatTemplateError(.runtime, "slice indices must be integers or None")
            }
            return i
        }
        let st = try bound(step) ?? 1
        guard st != 0 else { throw ChatTemplateError(.runtime, "slice step cannot be zero") }
        func indices(_ n: Int) throws -> [Int] {
            try pythonSliceIndices(count: n, start: bound(start), stop: bound(stop), step: st)
        }
        switch obj {
        case .list(let a): return .list(try indices(a.count).map { a[$0] })
        case .tuple(let a): return .tuple(try indices(a.count).map { a[$0] })
        case .string(let s):
            let scalars = Array(s.unicodeScalars)
            var out = String.UnicodeScalarView()
            for i in try indices(scalars.count) { out.append(scalars[i]) }
            return .string(String(out))
        case .undefined(let msg): throw ChatTemplateError(.undefined, msg)
        default: throw ChatTemplateError(.runtime, "'\(obj.typeName)' object is not subscriptable")
        }
    }

    // MARK: operators

    func binary(_ op: String, _ l: JinjaValue, _ r: JinjaValue) throws -> JinjaValue {
        if op == "~" { return .string(l.pythonStr + r.pythonStr) }
        if case .undefined(let msg) = l { throw ChatTemplateError(.undefined, msg) }
        if case .undefined(let msg) = r { throw ChatTemplateError(.undefined, msg) }
        func unsupported() -> ChatTemplateError {
            if op == "+", case .string = l {
                return ChatTemplateError(.runtime, "can only concatenate str (not \"\(r.typeName)\") to str")
            }
            if op == "+", case .list = l {
                return ChatTemplateError(.runtime, "can only concatenate list (not \"\(r.typeName)\") to list")
            }
            return ChatTemplateError(.runtime, "unsupported operand type(s) for \(op): '\(l.typeName)' and '\(r.typeName)'")
        }
        switch op {
        case "+":
            switch (l, r) {
            case (.string(let a), .string(let b)): return .string(a + b)
            case (.list(let a), .list(let b)): return .list(a + b)
            case (.tuple(let a), .tuple(let b)): return .tuple(a + b)
            default: break
            }
        case "*":
            switch (l, r) {
            case (.string(let s), _) where r.integerValue != nil:
                return .string(String(repeating: s, count: try repeatCount(s.utf8.count, r.integerValue!)))
            case (_, .string(let s)) where l.integerValue != nil:
                return .string(String(repeating: s, count: try repeatCount(s.utf8.count, l.integerValue!)))
            case (.list(let a), _) where r.integerValue != nil:
                return .list(Array(repeating: a, count: try repeatCount(a.count, r.integerValue!)).flatMap { $0 })
            default: break
            }
        case "%":
            if case .string(let format) = l {
                if case .tuple(let t) = r { return .string(try PythonString.percentFormat(format, t)) }
                return .string(try PythonString.percentFormat(format, [r]))
            }
        default: break
        }
        // Numbers (bool counts as int).
        if let a = l.integerValue, let b = r.integerValue {
            switch op {
            case "+":
                let (v, o) = a.addingReportingOverflow(b)
                return o ? .float(Double(a) + Double(b)) : .int(v)
            case "-":
                let (v, o) = a.subtractingReportingOverflow(b)
                return o ? .float(Double(a) - Double(b)) : .int(v)
            case "*":
                let (v, o) = a.multipliedReportingOverflow(by: b)
                return o ? .float(Double(a) * Double(b)) : .int(v)
            case "/":
                guard b != 0 else { throw ChatTemplateError(.runtime, "division by zero") }
                return .float(Double(a) / Double(b))
            case "//":
                guard b != 0 else { throw ChatTemplateError(.runtime, "integer division or modulo by zero") }
                return .int(floorDiv(a, b))
            case "%":
                guard b != 0 else { throw ChatTemplateError(.runtime, "integer division or modulo by zero") }
                return .int(a - floorDiv(a, b) * b)
            case "**":
                if b >= 0 {
                    var result = 1
                    for _ in 0..<b {
                        let (v, o) = result.multipliedReportingOverflow(by: a)
                        if o { return .float(pow(Double(a), Double(b))) }
                        result = v
                    }
                    return .int(result)
                }
                return .float(pow(Double(a), Double(b)))
            default: break
            }
        }
        if let a = l.numericValue, let b = r.numericValue {
            switch op {
            case "+": return .float(a + b)
            case "-": return .float(a - b)
            case "*": return .float(a * b)
            case "/":
                guard b != 0 else { throw ChatTemplateError(.runtime, "float division by zero") }
                return .float(a / b)
            case "//":
                guard b != 0 else { throw ChatTemplateError(.runtime, "float floor division by zero") }
                return .float((a / b).rounded(.down))
            case "%":
                guard b != 0 else { throw ChatTemplateError(.runtime, "float modulo") }
                let m = a.truncatingRemainder(dividingBy: b)
                return .float(m != 0 && (m < 0) != (b < 0) ? m + b : m)
            case "**": return .float(pow(a, b))
            default: break
            }
        }
        throw unsupported()
    }

    /// Python comparison; ordering across unrelated types is a TypeError, as in Python.
    func compare(_ op: String, _ l: JinjaValue, _ r: JinjaValue) throws -> Bool {
        switch op {
        case "==": return l == r
        case "!=": return l != r
        case "in": return try contains(r, l)
        case "notin": return try !contains(r, l)
        default:
            if case .undefined(let msg) = l { throw ChatTemplateError(.undefined, msg) }
            if case .undefined(let msg) = r { throw ChatTemplateError(.undefined, msg) }
            guard let order = pythonOrder(l, r) else {
                throw ChatTemplateError(.runtime, "'\(op)' not supported between instances of '\(l.typeName)' and '\(r.typeName)'")
            }
            switch op {
            case "<": return order < 0
            case "<=": return order <= 0
            case ">": return order > 0
            default: return order >= 0
            }
        }
    }

    /// Python `needle in haystack`: substring, element or key membership.
    func contains(_ haystack: JinjaValue, _ needle: JinjaValue) throws -> Bool {
        switch haystack {
        case .string(let s):
            guard case .string(let n) = needle else {
                if case .undefined(let msg) = needle { throw ChatTemplateError(.undefined, msg) }
                throw ChatTemplateError(.runtime, "'in <string>' requires string as left operand, not \(needle.typeName)")
            }
            return PythonString.find(Array(s.unicodeScalars), Array(n.unicodeScalars), from: 0) != nil
        case .list(let a), .tuple(let a): return a.contains(needle)
        case .dict(let d):
            if case .string(let k) = needle { return d[k] != nil }
            return false
        case .namespace(let ns):
            if case .string(let k) = needle { return ns.attributes[k] != nil }
            return false
        case .undefined: return false
        default: throw ChatTemplateError(.runtime, "argument of type '\(haystack.typeName)' is not iterable")
        }
    }
}

/// `seq * n` with a size cap: a template (possibly from a request) must not exhaust memory.
func repeatCount(_ unit: Int, _ n: Int) throws -> Int {
    let count = max(0, n)
    guard unit == 0 || count <= 16_000_000 / unit else {
        throw ChatTemplateError(.runtime, "repetition result is too large (\(unit) × \(count))")
    }
    return count
}

/// Python's ordering of two values (-1, 0, 1), or nil when Python raises TypeError.
func pythonOrder(_ l: JinjaValue, _ r: JinjaValue) -> Int? {
    switch (l, r) {
    case (.string(let a), .string(let b)):
        if a.unicodeScalars.elementsEqual(b.unicodeScalars) { return 0 }
        return a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars) { $0.value < $1.value } ? -1 : 1
    case (.list(let a), .list(let b)), (.tuple(let a), .tuple(let b)):
        for (x, y) in zip(a, b) where x != y { return pythonOrder(x, y) }
        return a.count == b.count ? 0 : (a.count < b.count ? -1 : 1)
    default:
        if let a = l.integerValue, let b = r.integerValue { return a == b ? 0 : (a < b ? -1 : 1) }
        if let a = l.numericValue, let b = r.numericValue { return a == b ? 0 : (a < b ? -1 : 1) }
        return nil
    }
}

func floorDiv(_ a: Int, _ b: Int) -> Int {
    let q = a / b
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q
}

/// Python's `slice.indices` + `range`: the element positions `seq[start:stop:step]` selects.
func pythonSliceIndices(count n: Int, start: Int?, stop: Int?, step: Int) -> [Int] {
    func clamp(_ v: Int?, _ def: Int, low: Int, high: Int) -> Int {
        guard var x = v else { return def }
        if x < 0 { x += n }
        return min(max(x, low), high)
    }
    var out: [Int] = []
    if step > 0 {
        let s = clamp(start, 0, low: 0, high: n)
        let e = clamp(stop, n, low: 0, high: n)
        var i = s
        while i < e {
            out.append(i)
            i += step
        }
    } else {
        let s = clamp(start, n - 1, low: -1, high: n - 1)
        let e = clamp(stop, -1, low: -1, high: n - 1)
        var i = s
        while i > e {
            out.append(i)
            i += step
        }
    }
    return out
}

import Foundation
