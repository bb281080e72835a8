// Python methods templates call on values: `s.strip()`, `s.split('x')`, `d.items()`, `d.get(k)`, ...
// Mutating list/dict methods are refused, as in jinja2's ImmutableSandboxedEnvironment.

/// Mutating methods that the immutable sandbox refuses (SecurityError).
private let unsafeMethods: [String: Set<String>] = [
    "list": ["append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear", "__setitem__", "__delitem__"],
    "dict": ["update", "pop", "popitem", "setdefault", "clear", "__setitem__", "__delitem__"],
]

extension JinjaArguments {
    /// Argument as a string, or nil when absent/None; a type error otherwise.
    func optionalString(_ position: Int, _ name: String, method: String) throws -> String? {
        guard let v = value(position, name), !v.isNone else { return nil }
        guard case .string(let s) = v else {
            throw ChatTemplateError(.runtime, "\(method)() argument '\(name)' must be str or None, not \(v.typeName)")
        }
        return s
    }

    func string(_ position: Int, _ name: String, method: String) throws -> String {
        guard let s = try optionalString(position, name, method: method) else {
            throw ChatTemplateError(.runtime, "\(method)() missing required argument '\(name)'")
        }
        return s
    }

    func int(_ position: Int, _ name: String, default def: Int, method: String) throws -> Int {
        guard let v = value(position, name) else { return def }
        guard let i = v.integerValue else {
            throw ChatTemplateError(.runtime, "\(method)() argument '\(name)' must be an integer, not \(v.typeName)")
        }
        return i
    }
}

/// `receiver.name` as a callable when it is a method of the receiver's Python type; nil otherwise.
func boundMethod(_ receiver: JinjaValue, _ name: String) -> JinjaCallable? {
    if let unsafe = unsafeMethods[receiver.typeName], unsafe.contains(name) {
        return JinjaCallable(name) { _, _ in
            throw ChatTemplateError(.runtime, "access to attribute '\(name)' of '\(receiver.typeName)' object is unsafe.")
        }
    }
    switch receiver {
    case .string(let s): return stringMethod(s, name)
    case .dict(let d): return dictMethod(d, name)
    case .list(let a), .tuple(let a): return sequenceMethod(a, receiver, name)
    default: return nil
    }
}

private func method(_ name: String, _ body: @escaping (JinjaArguments) throws -> JinjaValue) -> JinjaCallable {
    JinjaCallable(name) { args, _ in try body(args) }
}

private func stringMethod(_ s: String, _ name: String) -> JinjaCallable? {
    switch name {
    case "strip", "lstrip", "rstrip":
        return method(name) { args in
            let chars = try args.optionalString(0, "chars", method: name)
            return .string(PythonString.strip(s, chars, left: name != "rstrip", right: name != "lstrip"))
        }
    case "split", "rsplit":
        return method(name) { args in
            let sep = try args.optionalString(0, "sep", method: name)
            let maxsplit = try args.int(1, "maxsplit", default: -1, method: name)
            let parts = name == "split" ? try PythonString.split(s, sep, maxsplit: maxsplit) : try PythonString.rsplit(s, sep, maxsplit: maxsplit)
            return .list(parts.map { .string($0) })
        }
    case "splitlines":
        return method(name) { args in
            let keep = args.value(0, "keepends")?.isTruthy ?? false
            return .list(PythonString.splitlines(s, keepends: keep).map { .string($0) })
        }
    case "startswith", "endswith":
        return method(name) { args in
            guard let prefix = args.value(0, name == "startswith" ? "prefix" : "suffix") else {
                throw ChatTemplateError(.runtime, "\(name)() takes at least 1 argument (0 given)")
            }
            let candidates: [JinjaValue] = prefix.sequenceElements ?? [prefix]
            var subject = s
            if args.positional.count > 1 {
                let scalars = Array(s.unicodeScalars)
                let idx = pythonSliceIndices(
                    count: scalars.count, start: args.positional[1].integerValue,
                    stop: args.positional.count > 2 ? args.positional[2].integerValue : nil, step: 1)
                subject = PythonString.string(idx.map { scalars[$0] })
            }
            for c in candidates {
                guard case .string(let p) = c else {
                    throw ChatTemplateError(.runtime, "\(name) first arg must be str or a tuple of str, not \(c.typeName)")
                }
                if name == "startswith" ? PythonString.hasPrefix(subject, p) : PythonString.hasSuffix(subject, p) { return .bool(true) }
            }
            return .bool(false)
        }
    case "replace":
        return method(name) { args in
            let old = try args.string(0, "old", method: name)
            let new = try args.string(1, "new", method: name)
            let count = try args.int(2, "count", default: -1, method: name)
            return .string(PythonString.replace(s, old, new, count: count))
        }
    case "upper": return method(name) { _ in .string(PythonString.upper(s)) }
    case "lower", "casefold": return method(name) { _ in .string(PythonString.lower(s)) }
    case "title": return method(name) { _ in .string(PythonString.title(s)) }
    case "capitalize": return method(name) { _ in .string(PythonString.capitalize(s)) }
    case "swapcase": return method(name) { _ in .string(PythonString.swapcase(s)) }
    case "find", "rfind", "index", "rindex":
        return method(name) { args in
            let sub = Array(try args.string(0, "sub", method: name).unicodeScalars)
            let a = Array(s.unicodeScalars)
            var start = try args.int(1, "start", default: 0, method: name)
            var end = try args.int(2, "end", default: a.count, method: name)
            if start < 0 { start = max(0, start + a.count) }
            if end < 0 { end = max(0, end + a.count) }
            let found = name.hasPrefix("r") ? PythonString.rfind(a, sub, from: start, to: end) : PythonString.find(a, sub, from: start, to: end)
            if let f = found { return .int(f) }
            if name.hasSuffix("index") { throw ChatTemplateError(.runtime, "substring not found") }
            return .int(-1)
        }
    case "count":
        return method(name) { args in .int(PythonString.count(s, try args.string(0, "sub", method: name))) }
    case "join":
        return method(name) { args in
            guard let seq = args.value(0, "iterable") else { throw ChatTemplateError(.runtime, "join() takes exactly one argument (0 given)") }
            let items = try JinjaInterpreter.iterateStatic(seq)
            var parts: [String] = []
            for (i, item) in items.enumerated() {
                guard case .string(let p) = item else {
                    throw ChatTemplateError(.runtime, "sequence item \(i): expected str instance, \(item.typeName) found")
                }
                parts.append(p)
            }
            return .string(parts.joined(separator: s))
        }
    case "format":
        return method(name) { args in .string(try PythonString.format(s, args)) }
    case "isdigit", "isnumeric", "isdecimal":
        return method(name) { _ in .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.numericType != nil }) }
    case "isalpha":
        return method(name) { _ in .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic }) }
    case "isalnum":
        return method(name) { _ in
            .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil })
        }
    case "isspace":
        return method(name) { _ in .bool(!s.isEmpty && s.unicodeScalars.allSatisfy(isPythonWhitespace)) }
    case "isupper": return method(name) { _ in .bool(PythonString.isUpper(s)) }
    case "islower": return method(name) { _ in .bool(PythonString.isLower(s)) }
    case "removeprefix", "removesuffix":
        return method(name) { args in
            let p = try args.string(0, name == "removeprefix" ? "prefix" : "suffix", method: name)
            let a = Array(s.unicodeScalars)
            let n = p.unicodeScalars.count
            if name == "removeprefix", PythonString.hasPrefix(s, p) { return .string(PythonString.string(a[n...])) }
            if name == "removesuffix", !p.isEmpty, PythonString.hasSuffix(s, p) { return .string(PythonString.string(a[..<(a.count - n)])) }
            return .string(s)
        }
    case "zfill", "center", "ljust", "rjust":
        return method(name) { args in
            let width = try args.int(0, "width", default: 0, method: name)
            let fill = name == "zfill" ? "0" : (try args.optionalString(1, "fillchar", method: name) ?? " ")
            let n = s.unicodeScalars.count
            guard width > n else { return .string(s) }
            let total = width - n
            switch name {
            case "ljust": return .string(s + String(repeating: fill, count: total))
            case "rjust": return .string(String(repeating: fill, count: total) + s)
            case "center":
                let left = total / 2 + (total & width & 1)
                return .string(String(repeating: fill, count: left) + s + String(repeating: fill, count: total - left))
            default:
                if let f = s.unicodeScalars.first, f == "-" || f == "+" {
                    return .string(String(f) + String(repeating: "0", count: total) + PythonString.string(s.unicodeScalars.dropFirst()))
                }
                return .string(String(repeating: "0", count: total) + s)
            }
        }
    case "partition", "rpartition":
        return method(name) { args in
            let sep = try args.string(0, "sep", method: name)
            let a = Array(s.unicodeScalars)
            let n = Array(sep.unicodeScalars)
            guard !n.isEmpty else { throw ChatTemplateError(.runtime, "empty separator") }
            if let i = name == "partition" ? PythonString.find(a, n) : PythonString.rfind(a, n) {
                return .tuple([.string(PythonString.string(a[..<i])), .string(sep), .string(PythonString.string(a[(i + n.count)...]))])
            }
            return name == "partition" ? .tuple([.string(s), "", ""]) : .tuple(["", "", .string(s)])
        }
    default:
        return nil
    }
}

private func dictMethod(_ d: JinjaDict, _ name: String) -> JinjaCallable? {
    switch name {
    case "items": return method(name) { _ in .list(d.items.map { .tuple([.string($0.key), $0.value]) }) }
    case "keys": return method(name) { _ in .list(d.keys.map { .string($0) }) }
    case "values": return method(name) { _ in .list(d.values) }
    case "copy": return method(name) { _ in .dict(d) }
    case "get":
        return method(name) { args in
            guard let key = args.value(0, "key") else { throw ChatTemplateError(.runtime, "get expected at least 1 argument, got 0") }
            if case .string(let k) = key, let v = d[k] { return v }
            return args.value(1, "default") ?? .null
        }
    default:
        return nil
    }
}

private func sequenceMethod(_ a: [JinjaValue], _ receiver: JinjaValue, _ name: String) -> JinjaCallable? {
    switch name {
    case "index":
        return method(name) { args in
            guard let x = args.value(0, "value"), let i = a.firstIndex(of: x) else {
                throw ChatTemplateError(.runtime, "value is not in \(receiver.typeName)")
            }
            return .int(i)
        }
    case "count":
        return method(name) { args in
            guard let x = args.value(0, "value") else { throw ChatTemplateError(.runtime, "count() takes exactly one argument (0 given)") }
            return .int(a.filter { $0 == x }.count)
        }
    case "copy":
        return receiver.typeName == "list" ? method(name) { _ in receiver } : nil
    default:
        return nil
    }
}

extension JinjaInterpreter {
    /// Python iteration without an interpreter at hand (same rules as `iterate`).
    static func iterateStatic(_ value: JinjaValue) throws -> [JinjaValue] {
        switch value {
        case .list(let a), .tuple(let a): return a
        case .dict(let d): return d.keys.map { .string($0) }
        case .string(let s): return s.unicodeScalars.map { .string(String($0)) }
        case .undefined: return []
        case .namespace(let ns): return ns.attributes.keys.map { .string($0) }
        default: throw ChatTemplateError(.runtime, "'\(value.typeName)' object is not iterable")
        }
    }
}
