// Filters (`value | name(args)`): jinja2's built-ins that chat templates use, plus transformers' `tojson`.

import Foundation

typealias JinjaFilter = (JinjaValue, JinjaArguments, JinjaInterpreter) throws -> JinjaValue

extension JinjaInterpreter {
    func applyFilter(_ name: String, _ value: JinjaValue, _ args: JinjaCallArgs, _ scope: JinjaScope) throws -> JinjaValue {
        try applyFilter(name, value, try evaluateArgs(args, scope))
    }

    func applyFilter(_ name: String, _ value: JinjaValue, _ args: JinjaArguments) throws -> JinjaValue {
        guard let filter = jinjaFilters[name] else { throw ChatTemplateError(.runtime, "No filter named '\(name)'.") }
        return try filter(value, args, self)
    }
}

/// Raises jinja2's UndefinedError for an Undefined input (filters that cannot work on one).
private func requireDefined(_ v: JinjaValue) throws {
    if case .undefined(let msg) = v { throw ChatTemplateError(.undefined, msg) }
}

/// `attribute` arguments may be dotted (`"function.name"`) or integer indices, as in jinja2.
func lookupAttributePath(_ value: JinjaValue, _ path: JinjaValue, _ interp: JinjaInterpreter) throws -> JinjaValue {
    if let i = path.integerValue { return try interp.getItem(value, .int(i)) }
    var v = value
    for part in path.pythonStr.split(separator: ".", omittingEmptySubsequences: false) {
        v = try interp.getItem(v, Int(part).map { .int($0) } ?? .string(String(part)))
    }
    return v
}

/// Sort key for `sort`/`unique`/`min`/`max`: strings lower-cased unless case-sensitive.
private func ignoringCase(_ v: JinjaValue, _ caseSensitive: Bool) -> JinjaValue {
    if !caseSensitive, case .string(let s) = v { return .string(s.lowercased()) }
    return v
}

private func sortedValues(_ items: [JinjaValue], key: (JinjaValue) throws -> JinjaValue, reverse: Bool) throws -> [JinjaValue] {
    let keyed = try items.map { (try key($0), $0) }
    var failure: ChatTemplateError? = nil
    // Stable merge of indices keeps Python's sort stability.
    let order = keyed.indices.sorted { i, j in
        guard let c = pythonOrder(keyed[i].0, keyed[j].0) else {
            failure = ChatTemplateError(.runtime, "'<' not supported between instances of '\(keyed[i].0.typeName)' and '\(keyed[j].0.typeName)'")
            return i < j
        }
        if c == 0 { return i < j }
        return reverse ? c > 0 : c < 0
    }
    if let f = failure { throw f }
    return order.map { keyed[$0].1 }
}

/// jinja2's `select`/`reject`/`selectattr`/`rejectattr`.
private func selectFilter(attribute: Bool, keep: Bool) -> JinjaFilter {
    { value, args, interp in
        var positional = args.positional
        var attr: JinjaValue? = nil
        if attribute {
            guard !positional.isEmpty else { throw ChatTemplateError(.runtime, "Missing parameter for attribute name") }
            attr = positional.removeFirst()
        }
        let testName = positional.isEmpty ? nil : positional.removeFirst().pythonStr
        var out: [JinjaValue] = []
        guard value.isTruthy else { return .list([]) }  // jinja2: `if value:` before iterating (none -> [])
        for item in try interp.iterate(value) {
            let subject = try attr.map { try lookupAttributePath(item, $0, interp) } ?? item
            let passed = try testName.map { try interp.applyTest($0, subject, JinjaArguments(positional, keyword: args.keyword)) } ?? subject.isTruthy
            if passed == keep { out.append(item) }
        }
        return .list(out)
    }
}

private func toInt(_ v: JinjaValue, _ def: JinjaValue, base: Int) -> JinjaValue {
    switch v {
    case .int, .bool: return .int(v.integerValue!)
    case .float(let d):
        return d.isFinite && abs(d) < 9.2e18 ? .int(Int(d.rounded(.towardZero))) : def
    case .string(let s):
        let t = PythonString.strip(s, nil, left: true, right: true).replacingOccurrences(of: "_", with: "")
        if let i = Int(t, radix: base) { return .int(i) }
        if let d = Double(t), d.isFinite, abs(d) < 9.2e18 { return .int(Int(d.rounded(.towardZero))) }
        return def
    default: return def
    }
}

private func toFloat(_ v: JinjaValue, _ def: JinjaValue) -> JinjaValue {
    switch v {
    case .int, .bool, .float: return .float(v.numericValue!)
    case .string(let s):
        let t = PythonString.strip(s, nil, left: true, right: true).lowercased()
        switch t {
        case "inf", "+inf", "infinity", "+infinity": return .float(.infinity)
        case "-inf", "-infinity": return .float(-.infinity)
        case "nan", "+nan", "-nan": return .float(.nan)
        default: return Double(t).map { .float($0) } ?? def
        }
    default: return def
    }
}

/// Python's `round(x, n)`: correctly rounded to n decimals (ties to even on the exact binary value).
private func pythonRound(_ d: Double, _ digits: Int) -> Double {
    guard d.isFinite else { return d }
    if digits >= 0 {
        return Double(String(format: "%.\(min(digits, 30))f", d)) ?? d
    }
    let scale = pow(10.0, Double(-digits))
    return (d / scale).rounded(.toNearestOrEven) * scale
}

private func htmlEscape(_ s: String) -> String {
    var out = ""
    for c in s.unicodeScalars {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&#34;"
        case "'": out += "&#39;"
        default: out.unicodeScalars.append(c)
        }
    }
    return out
}

private func length(_ v: JinjaValue) throws -> Int {
    switch v {
    case .string(let s): return s.unicodeScalars.count
    case .list(let a), .tuple(let a): return a.count
    case .dict(let d): return d.count
    case .undefined: return 0
    case .namespace(let ns): return ns.attributes.count
    default: throw ChatTemplateError(.runtime, "object of type '\(v.typeName)' has no len()")
    }
}

let jinjaFilters: [String: JinjaFilter] = {
    var f: [String: JinjaFilter] = [:]
    f["tojson"] = { value, args, _ in
        // transformers: json.dumps(x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)
        var indent: String? = nil
        if let i = args.value(1, "indent"), !i.isNone {
            if let n = i.integerValue { indent = String(repeating: " ", count: max(0, n)) } else { indent = i.pythonStr }
        }
        var separators: (String, String)? = nil
        if let s = args.value(2, "separators"), let parts = s.sequenceElements, parts.count == 2 {
            separators = (parts[0].pythonStr, parts[1].pythonStr)
        }
        let encoder = PythonJSONEncoder(
            ensureASCII: args.value(0, "ensure_ascii")?.isTruthy ?? false, indent: indent, separators: separators,
            sortKeys: args.value(3, "sort_keys")?.isTruthy ?? false)
        return .string(try encoder.encode(value))
    }
    f["string"] = { v, _, _ in .string(v.pythonStr) }
    f["safe"] = { v, _, _ in v }
    f["escape"] = { v, _, _ in .string(htmlEscape(v.pythonStr)) }
    f["e"] = f["escape"]
    f["forceescape"] = f["escape"]
    f["trim"] = { v, args, _ in
        .string(PythonString.strip(v.pythonStr, try args.optionalString(0, "chars", method: "trim"), left: true, right: true))
    }
    f["upper"] = { v, _, _ in .string(PythonString.upper(v.pythonStr)) }
    f["lower"] = { v, _, _ in .string(PythonString.lower(v.pythonStr)) }
    f["capitalize"] = { v, _, _ in .string(PythonString.capitalize(v.pythonStr)) }
    f["title"] = { v, _, _ in
        // jinja2: split before runs of [-\s({\[<], then upper-case each piece's first char, lower-case the rest.
        var out = ""
        var atWordStart = true
        for c in v.pythonStr.unicodeScalars {
            let separator = isPythonWhitespace(c) || "-({[<".unicodeScalars.contains(c)
            if separator {
                out.unicodeScalars.append(c)
                atWordStart = true
            } else {
                out += atWordStart ? c.properties.uppercaseMapping : c.properties.lowercaseMapping
                atWordStart = false
            }
        }
        return .string(out)
    }
    f["length"] = { v, _, _ in .int(try length(v)) }
    f["count"] = f["length"]
    f["wordcount"] = { v, _, _ in
        var n = 0
        var inWord = false
        for c in v.pythonStr.unicodeScalars {
            let w = c == "_" || c.properties.isAlphabetic || c.properties.numericType != nil
            if w && !inWord { n += 1 }
            inWord = w
        }
        return .int(n)
    }
    f["default"] = { v, args, _ in
        let def = args.value(0, "default_value") ?? .string("")
        let boolean = args.value(1, "boolean")?.isTruthy ?? false
        if v.isUndefined || (boolean && !v.isTruthy) { return def }
        return v
    }
    f["d"] = f["default"]
    f["first"] = { v, _, interp in
        let items = try interp.iterate(v)
        return items.first ?? .undefined("No first item, sequence was empty.")
    }
    f["last"] = { v, _, interp in
        let items = try interp.iterate(v)
        return items.last ?? .undefined("No last item, sequence was empty.")
    }
    f["join"] = { v, args, interp in
        let sep = args.value(0, "d")?.pythonStr ?? ""
        var items = try interp.iterate(v)
        if let attr = args.value(1, "attribute"), !attr.isNone {
            items = try items.map { try lookupAttributePath($0, attr, interp) }
        }
        return .string(items.map(\.pythonStr).joined(separator: sep))
    }
    f["list"] = { v, _, interp in .list(try interp.iterate(v)) }
    f["items"] = { v, _, _ in
        switch v {
        case .undefined: return .list([])
        case .dict(let d): return .list(d.items.map { .tuple([.string($0.key), $0.value]) })
        case .namespace(let ns): return .list(ns.attributes.items.map { .tuple([.string($0.key), $0.value]) })
        default: throw ChatTemplateError(.runtime, "Can only get item pairs from a mapping.")
        }
    }
    f["dictsort"] = { v, args, interp in
        guard case .dict(let d) = v else { throw ChatTemplateError(.runtime, "dictsort: a mapping is required") }
        let caseSensitive = args.value(0, "case_sensitive")?.isTruthy ?? false
        let byValue = args.value(1, "by")?.pythonStr == "value"
        let reverse = args.value(2, "reverse")?.isTruthy ?? false
        let pairs = d.items.map { JinjaValue.tuple([.string($0.key), $0.value]) }
        return .list(try sortedValues(pairs, key: { p in ignoringCase(p.sequenceElements![byValue ? 1 : 0], caseSensitive) }, reverse: reverse))
    }
    f["int"] = { v, args, _ in
        toInt(v, args.value(0, "default") ?? .int(0), base: args.value(1, "base")?.integerValue ?? 10)
    }
    f["float"] = { v, args, _ in toFloat(v, args.value(0, "default") ?? .float(0)) }
    f["abs"] = { v, _, _ in
        switch v {
        case .int(let i): return .int(abs(i))
        case .bool(let b): return .int(b ? 1 : 0)
        case .float(let d): return .float(abs(d))
        default:
            try requireDefined(v)
            throw ChatTemplateError(.runtime, "bad operand type for abs(): '\(v.typeName)'")
        }
    }
    f["round"] = { v, args, _ in
        let precision = args.value(0, "precision")?.integerValue ?? 0
        let methodName = args.value(1, "method")?.pythonStr ?? "common"
        try requireDefined(v)
        guard let d = v.numericValue else { throw ChatTemplateError(.runtime, "round: a number is required, not \(v.typeName)") }
        switch methodName {
        case "common":
            if v.integerValue != nil { return .int(v.integerValue!) }  // round(int, n) stays an int
            return .float(pythonRound(d, precision))
        case "ceil", "floor":
            let scale = pow(10.0, Double(precision))
            return .float((d * scale).rounded(methodName == "ceil" ? .up : .down) / scale)
        default:
            throw ChatTemplateError(.runtime, "method must be 'common', 'ceil' or 'floor'")
        }
    }
    f["replace"] = { v, args, _ in
        let old = args.value(0, "old")?.pythonStr ?? ""
        let new = args.value(1, "new")?.pythonStr ?? ""
        let count = args.value(2, "count").flatMap { $0.isNone ? nil : $0.integerValue } ?? -1
        return .string(PythonString.replace(v.pythonStr, old, new, count: count))
    }
    f["reverse"] = { v, _, interp in
        if case .string(let s) = v { return .string(PythonString.string(s.unicodeScalars.reversed())) }
        return .list(try interp.iterate(v).reversed())
    }
    f["sort"] = { v, args, interp in
        let reverse = args.value(0, "reverse")?.isTruthy ?? false
        let caseSensitive = args.value(1, "case_sensitive")?.isTruthy ?? false
        let attr = args.value(2, "attribute").flatMap { $0.isNone ? nil : $0 }
        return .list(
            try sortedValues(
                try interp.iterate(v),
                key: { item in ignoringCase(try attr.map { a in try lookupAttributePath(item, a, interp) } ?? item, caseSensitive) },
                reverse: reverse))
    }
    f["unique"] = { v, args, interp in
        let caseSensitive = args.value(0, "case_sensitive")?.isTruthy ?? false
        let attr = args.value(1, "attribute").flatMap { $0.isNone ? nil : $0 }
        var seen: [JinjaValue] = []
        var out: [JinjaValue] = []
        for item in try interp.iterate(v) {
            let key = ignoringCase(try attr.map { try lookupAttributePath(item, $0, interp) } ?? item, caseSensitive)
            if !seen.contains(key) {
                seen.append(key)
                out.append(item)
            }
        }
        return .list(out)
    }
    for (name, wantMax) in [("min", false), ("max", true)] {
        f[name] = { v, args, interp in
            let caseSensitive = args.value(0, "case_sensitive")?.isTruthy ?? false
            let attr = args.value(1, "attribute").flatMap { $0.isNone ? nil : $0 }
            let items = try interp.iterate(v)
            guard !items.isEmpty else { return .undefined("No aggregated item, sequence was empty.") }
            let sorted = try sortedValues(
                items, key: { item in ignoringCase(try attr.map { a in try lookupAttributePath(item, a, interp) } ?? item, caseSensitive) },
                reverse: false)
            return wantMax ? sorted.last! : sorted.first!
        }
    }
    f["sum"] = { v, args, interp in
        let attr = args.value(0, "attribute").flatMap { $0.isNone ? nil : $0 }
        var total = args.value(1, "start") ?? .int(0)
        for item in try interp.iterate(v) {
            total = try interp.binary("+", total, try attr.map { try lookupAttributePath(item, $0, interp) } ?? item)
        }
        return total
    }
    f["map"] = { v, args, interp in
        let items = try interp.iterate(v)
        if let attr = args.keyword.first(where: { $0.0 == "attribute" })?.1 {
            let def = args.keyword.first(where: { $0.0 == "default" })?.1
            return .list(
                try items.map { item in
                    let r = try lookupAttributePath(item, attr, interp)
                    if r.isUndefined, let d = def { return d }
                    return r
                })
        }
        guard let filterName = args.positional.first?.pythonStr else { return .list(items) }
        let rest = JinjaArguments(Array(args.positional.dropFirst()), keyword: args.keyword)
        return .list(try items.map { try interp.applyFilter(filterName, $0, rest) })
    }
    f["select"] = selectFilter(attribute: false, keep: true)
    f["reject"] = selectFilter(attribute: false, keep: false)
    f["selectattr"] = selectFilter(attribute: true, keep: true)
    f["rejectattr"] = selectFilter(attribute: true, keep: false)
    f["attr"] = { v, args, _ in
        // Only a Python attribute (a method or namespace attribute), never an item: jinja2's do_attr.
        let name = args.value(0, "name")?.pythonStr ?? ""
        if case .namespace(let ns) = v, let a = ns.attributes[name] { return a }
        if let m = boundMethod(v, name) { return .callable(m) }
        return .undefined(JinjaInterpreter.noAttributeMessage(v, "'\(name)'"))
    }
    f["batch"] = { v, args, interp in
        guard let size = args.value(0, "linecount")?.integerValue, size > 0 else {
            throw ChatTemplateError(.runtime, "batch: linecount must be a positive integer")
        }
        let fill = args.value(1, "fill_with").flatMap { $0.isNone ? nil : $0 }
        let items = try interp.iterate(v)
        var out: [JinjaValue] = []
        var i = 0
        while i < items.count {
            var chunk = Array(items[i..<min(i + size, items.count)])
            if let fill = fill, chunk.count < size { chunk += Array(repeating: fill, count: size - chunk.count) }
            out.append(.list(chunk))
            i += size
        }
        return .list(out)
    }
    f["indent"] = { v, args, _ in
        let w = args.value(0, "width") ?? .int(4)
        let indention: String
        if case .string(let s) = w { indention = s } else { indention = String(repeating: " ", count: max(0, w.integerValue ?? 4)) }
        let first = args.value(1, "first")?.isTruthy ?? false
        let blank = args.value(2, "blank")?.isTruthy ?? false
        let lines = PythonString.splitlines(v.pythonStr + "\n")
        var rv: String
        if blank {
            rv = lines.joined(separator: "\n" + indention)
        } else {
            rv = lines.first ?? ""
            let rest = lines.dropFirst()
            if !rest.isEmpty { rv += "\n" + rest.map { $0.isEmpty ? $0 : indention + $0 }.joined(separator: "\n") }
        }
        if first { rv = indention + rv }
        return .string(rv)
    }
    f["center"] = { v, args, _ in
        let width = args.value(0, "width")?.integerValue ?? 80
        let s = v.pythonStr
        let n = s.unicodeScalars.count
        guard width > n else { return .string(s) }
        let total = width - n
        let left = total / 2 + (total & width & 1)
        return .string(String(repeating: " ", count: left) + s + String(repeating: " ", count: total - left))
    }
    f["format"] = { v, args, _ in
        if !args.keyword.isEmpty && args.positional.isEmpty {
            throw ChatTemplateError(.runtime, "format with keyword arguments is not supported")
        }
        return .string(try PythonString.percentFormat(v.pythonStr, args.positional))
    }
    f["pprint"] = { v, _, _ in .string(v.pythonRepr) }
    return f
}()
