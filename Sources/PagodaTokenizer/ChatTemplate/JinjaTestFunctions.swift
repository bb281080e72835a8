// Jinja tests (`value is name(args)`): jinja2's built-in tests (not unit tests).

typealias JinjaTest = (JinjaValue, [JinjaValue], JinjaInterpreter) throws -> Bool

extension JinjaInterpreter {
    func applyTest(_ name: String, _ value: JinjaValue, _ args: JinjaArguments) throws -> Bool {
        guard let test = jinjaTests[name] else { throw ChatTemplateError(.runtime, "No test named '\(name)'.") }
        return try test(value, args.positional + args.keyword.map(\.1), self)
    }
}

private func argument(_ args: [JinjaValue], _ test: String) throws -> JinjaValue {
    guard let a = args.first else { throw ChatTemplateError(.runtime, "test '\(test)' needs an argument") }
    return a
}

private func comparing(_ op: String) -> JinjaTest {
    { v, args, interp in try interp.compare(op, v, try argument(args, op)) }
}

let jinjaTests: [String: JinjaTest] = {
    var t: [String: JinjaTest] = [:]
    t["defined"] = { v, _, _ in !v.isUndefined }
    t["undefined"] = { v, _, _ in v.isUndefined }
    t["none"] = { v, _, _ in v.isNone }
    t["boolean"] = { v, _, _ in
        if case .bool = v { return true }
        return false
    }
    t["true"] = { v, _, _ in v == .bool(true) && { if case .bool = v { return true } else { return false } }() }
    t["false"] = { v, _, _ in v == .bool(false) && { if case .bool = v { return true } else { return false } }() }
    t["integer"] = { v, _, _ in
        if case .int = v { return true }
        return false
    }
    t["float"] = { v, _, _ in
        if case .float = v { return true }
        return false
    }
    t["number"] = { v, _, _ in v.numericValue != nil }  // Python's Number includes bool
    t["string"] = { v, _, _ in
        if case .string = v { return true }
        return false
    }
    t["mapping"] = { v, _, _ in
        if case .dict = v { return true }
        return false
    }
    t["iterable"] = { v, _, _ in
        switch v {
        case .string, .list, .tuple, .dict, .undefined: return true  // jinja2's Undefined defines __iter__
        default: return false
        }
    }
    t["sequence"] = { v, _, _ in
        switch v {
        case .string, .list, .tuple, .dict: return true
        default: return false
        }
    }
    t["callable"] = { v, _, _ in
        if case .callable = v { return true }
        return false
    }
    t["sameas"] = { v, args, _ in
        let other = try argument(args, "sameas")
        switch (v, other) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.namespace(let a), .namespace(let b)): return a === b
        default: return false
        }
    }
    t["escaped"] = { _, _, _ in false }
    t["odd"] = { v, _, _ in
        guard let i = v.integerValue else { throw ChatTemplateError(.runtime, "odd: an integer is required, not \(v.typeName)") }
        return i % 2 != 0
    }
    t["even"] = { v, _, _ in
        guard let i = v.integerValue else { throw ChatTemplateError(.runtime, "even: an integer is required, not \(v.typeName)") }
        return i % 2 == 0
    }
    t["divisibleby"] = { v, args, _ in
        let d = try argument(args, "divisibleby")
        guard let a = v.numericValue, let b = d.numericValue, b != 0 else {
            throw ChatTemplateError(.runtime, "divisibleby needs numbers and a non-zero divisor")
        }
        return a.truncatingRemainder(dividingBy: b) == 0
    }
    t["in"] = { v, args, interp in try interp.contains(try argument(args, "in"), v) }
    t["lower"] = { v, _, _ in
        if case .string(let s) = v { return PythonString.isLower(s) }
        return false
    }
    t["upper"] = { v, _, _ in
        if case .string(let s) = v { return PythonString.isUpper(s) }
        return false
    }
    t["filter"] = { v, _, _ in jinjaFilters[v.pythonStr] != nil }
    t["test"] = { v, _, _ in jinjaTests[v.pythonStr] != nil }
    for (names, op) in [
        (["eq", "equalto", "=="], "=="), (["ne", "!="], "!="), (["lt", "lessthan", "<"], "<"), (["le", "<="], "<="),
        (["gt", "greaterthan", ">"], ">"), (["ge", ">="], ">="),
    ] {
        for n in names { t[n] = comparing(op) }
    }
    return t
}()
