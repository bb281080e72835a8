// Python `str` operations, on Unicode scalars (Python strings are sequences of code points;
// Swift's String compares and indexes by grapheme cluster, which would differ).

enum PythonString {
    typealias Scalars = [Unicode.Scalar]

    static func string(_ s: some Sequence<Unicode.Scalar>) -> String {
        var v = String.UnicodeScalarView()
        v.append(contentsOf: s)
        return String(v)
    }

    /// First index of `needle` in `hay` at or after `from`.
    static func find(_ hay: Scalars, _ needle: Scalars, from: Int = 0, to: Int? = nil) -> Int? {
        let end = min(to ?? hay.count, hay.count)
        if needle.isEmpty { return from <= end ? from : nil }
        guard needle.count <= end - from else { return nil }
        var i = max(from, 0)
        while i + needle.count <= end {
            if hay[i] == needle[0] && hay[i..<i + needle.count].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }

    static func rfind(_ hay: Scalars, _ needle: Scalars, from: Int = 0, to: Int? = nil) -> Int? {
        let end = min(to ?? hay.count, hay.count)
        if needle.isEmpty { return end >= from ? end : nil }
        var i = end - needle.count
        while i >= max(from, 0) {
            if hay[i..<i + needle.count].elementsEqual(needle) { return i }
            i -= 1
        }
        return nil
    }

    /// `str.strip/lstrip/rstrip(chars)`: nil chars means whitespace.
    static func strip(_ s: String, _ chars: String?, left: Bool, right: Bool) -> String {
        let a = Array(s.unicodeScalars)
        let set = chars.map { Set($0.unicodeScalars) }
        func strippable(_ c: Unicode.Scalar) -> Bool { set.map { $0.contains(c) } ?? isPythonWhitespace(c) }
        var lo = 0
        var hi = a.count
        if left { while lo < hi, strippable(a[lo]) { lo += 1 } }
        if right { while hi > lo, strippable(a[hi - 1]) { hi -= 1 } }
        return string(a[lo..<hi])
    }

    /// `str.split(sep, maxsplit)`; sep nil splits on whitespace runs and drops empty parts.
    static func split(_ s: String, _ sep: String?, maxsplit: Int) throws -> [String] {
        let a = Array(s.unicodeScalars)
        var out: [String] = []
        if let sep = sep {
            let n = Array(sep.unicodeScalars)
            guard !n.isEmpty else { throw ChatTemplateError(.runtime, "empty separator") }
            var start = 0
            while maxsplit < 0 || out.count < maxsplit, let i = find(a, n, from: start) {
                out.append(string(a[start..<i]))
                start = i + n.count
            }
            out.append(string(a[start...]))
            return out
        }
        var i = 0
        while i < a.count {
            while i < a.count, isPythonWhitespace(a[i]) { i += 1 }
            guard i < a.count else { break }
            if maxsplit >= 0 && out.count == maxsplit {
                var end = a.count
                while end > i, isPythonWhitespace(a[end - 1]) { end -= 1 }
                out.append(string(a[i..<end]))
                break
            }
            let start = i
            while i < a.count, !isPythonWhitespace(a[i]) { i += 1 }
            out.append(string(a[start..<i]))
        }
        return out
    }

    /// `str.rsplit(sep, maxsplit)`.
    static func rsplit(_ s: String, _ sep: String?, maxsplit: Int) throws -> [String] {
        if maxsplit < 0 { return try split(s, sep, maxsplit: -1) }
        let a = Array(s.unicodeScalars)
        var out: [String] = []
        if let sep = sep {
            let n = Array(sep.unicodeScalars)
            guard !n.isEmpty else { throw ChatTemplateError(.runtime, "empty separator") }
            var end = a.count
            while out.count < maxsplit, let i = rfind(a, n, from: 0, to: end) {
                out.append(string(a[(i + n.count)..<end]))
                end = i
            }
            out.append(string(a[..<end]))
            return out.reversed()
        }
        var i = a.count
        while i > 0 {
            while i > 0, isPythonWhitespace(a[i - 1]) { i -= 1 }
            guard i > 0 else { break }
            if out.count == maxsplit {
                var start = 0
                while start < i, isPythonWhitespace(a[start]) { start += 1 }
                out.append(string(a[start..<i]))
                break
            }
            let end = i
            while i > 0, !isPythonWhitespace(a[i - 1]) { i -= 1 }
            out.append(string(a[i..<end]))
        }
        return out.reversed()
    }

    /// `str.splitlines(keepends)`: Python's line boundaries (\n, \r, \r\n, \v, \f, \x1c-\x1e, \x85, \u2028, \u2029).
    static func splitlines(_ s: String, keepends: Bool = false) -> [String] {
        let a = Array(s.unicodeScalars)
        var out: [String] = []
        var start = 0
        var i = 0
        while i < a.count {
            let c = a[i].value
            if [0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029].contains(c) {
                var end = i + 1
                if c == 0x0D, i + 1 < a.count, a[i + 1] == "\n" { end += 1 }
                out.append(string(a[start..<(keepends ? end : i)]))
                start = end
                i = end
            } else {
                i += 1
            }
        }
        if start < a.count { out.append(string(a[start...])) }
        return out
    }

    static func replace(_ s: String, _ old: String, _ new: String, count: Int) -> String {
        let a = Array(s.unicodeScalars)
        let o = Array(old.unicodeScalars)
        let n = Array(new.unicodeScalars)
        var out: Scalars = []
        var done = 0
        if o.isEmpty {
            // Python inserts `new` before every character and at the end.
            for c in a {
                if count < 0 || done < count {
                    out += n
                    done += 1
                }
                out.append(c)
            }
            if count < 0 || done < count { out += n }
            return string(out)
        }
        var start = 0
        while count < 0 || done < count, let i = find(a, o, from: start) {
            out += a[start..<i]
            out += n
            start = i + o.count
            done += 1
        }
        out += a[start...]
        return string(out)
    }

    static func count(_ s: String, _ sub: String) -> Int {
        let a = Array(s.unicodeScalars)
        let n = Array(sub.unicodeScalars)
        if n.isEmpty { return a.count + 1 }
        var c = 0
        var start = 0
        while let i = find(a, n, from: start) {
            c += 1
            start = i + n.count
        }
        return c
    }

    static func hasPrefix(_ s: String, _ p: String) -> Bool {
        let a = Array(s.unicodeScalars)
        let b = Array(p.unicodeScalars)
        return b.count <= a.count && a[0..<b.count].elementsEqual(b)
    }

    static func hasSuffix(_ s: String, _ p: String) -> Bool {
        let a = Array(s.unicodeScalars)
        let b = Array(p.unicodeScalars)
        return b.count <= a.count && a[(a.count - b.count)...].elementsEqual(b)
    }

    static func upper(_ s: String) -> String { s.uppercased() }
    static func lower(_ s: String) -> String { s.lowercased() }

    private static func titlecase(_ c: Unicode.Scalar) -> String { c.properties.titlecaseMapping }

    /// `str.capitalize()`: first character title-cased, the rest lower-cased.
    static func capitalize(_ s: String) -> String {
        guard let first = s.unicodeScalars.first else { return s }
        return titlecase(first) + string(s.unicodeScalars.dropFirst()).lowercased()
    }

    /// `str.title()`: a cased character after an uncased one is title-cased, others lower-cased.
    static func title(_ s: String) -> String {
        var out = ""
        var previousCased = false
        for c in s.unicodeScalars {
            out += previousCased ? c.properties.lowercaseMapping : titlecase(c)
            previousCased = c.properties.isCased
        }
        return out
    }

    static func swapcase(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            if c.properties.isUppercase {
                out += c.properties.lowercaseMapping
            } else if c.properties.isLowercase {
                out += c.properties.uppercaseMapping
            } else {
                out.unicodeScalars.append(c)
            }
        }
        return out
    }

    static func isUpper(_ s: String) -> Bool {
        var cased = false
        for c in s.unicodeScalars {
            if c.properties.isLowercase || c.properties.generalCategory == .titlecaseLetter { return false }
            if c.properties.isUppercase { cased = true }
        }
        return cased
    }

    static func isLower(_ s: String) -> Bool {
        var cased = false
        for c in s.unicodeScalars {
            if c.properties.isUppercase || c.properties.generalCategory == .titlecaseLetter { return false }
            if c.properties.isLowercase { cased = true }
        }
        return cased
    }

    /// Python's printf-style `format % args` for the common conversions (%s %r %d %i %f %x %%).
    static func percentFormat(_ format: String, _ args: [JinjaValue]) throws -> String {
        var out = ""
        var it = format.unicodeScalars.makeIterator()
        var argIndex = 0
        func nextArg() throws -> JinjaValue {
            guard argIndex < args.count else { throw ChatTemplateError(.runtime, "not enough arguments for format string") }
            defer { argIndex += 1 }
            return args[argIndex]
        }
        while let c = it.next() {
            guard c == "%" else {
                out.unicodeScalars.append(c)
                continue
            }
            var spec = ""
            var conv: Unicode.Scalar? = nil
            while let d = it.next() {
                if "sridfFxXeEgGc%".unicodeScalars.contains(d) {
                    conv = d
                    break
                }
                spec.unicodeScalars.append(d)
            }
            guard let conversion = conv else { throw ChatTemplateError(.runtime, "incomplete format") }
            switch conversion {
            case "%": out += "%"
            case "s": out += pad(try nextArg().pythonStr, spec)
            case "r": out += pad(try nextArg().pythonRepr, spec)
            case "d", "i":
                let v = try nextArg()
                guard let n = v.numericValue else { throw ChatTemplateError(.runtime, "%d format: a real number is required, not \(v.typeName)") }
                out += pad(String(Int(n.rounded(.towardZero))), spec)
            default:
                let v = try nextArg()
                guard let n = v.numericValue else { throw ChatTemplateError(.runtime, "must be real number, not \(v.typeName)") }
                out += String(format: "%" + spec + String(Character(conversion)), n)
            }
        }
        guard argIndex == args.count else { throw ChatTemplateError(.runtime, "not all arguments converted during string formatting") }
        return out
    }

    private static func pad(_ s: String, _ spec: String) -> String {
        let left = spec.hasPrefix("-")
        guard let width = Int(spec.trimmingCharacters(in: CharacterSet(charactersIn: "-"))), width > s.unicodeScalars.count else { return s }
        let fill = String(repeating: " ", count: width - s.unicodeScalars.count)
        return left ? s + fill : fill + s
    }

    /// `str.format(*args, **kwargs)` for `{}`, `{0}`, `{name}` and `{{`/`}}` (format specs are not supported).
    static func format(_ format: String, _ args: JinjaArguments) throws -> String {
        var out = ""
        let a = Array(format.unicodeScalars)
        var i = 0
        var auto = 0
        while i < a.count {
            let c = a[i]
            if c == "{" {
                if i + 1 < a.count, a[i + 1] == "{" {
                    out += "{"
                    i += 2
                    continue
                }
                guard let close = a[i...].firstIndex(of: "}") else { throw ChatTemplateError(.runtime, "Single '{' encountered in format string") }
                let field = string(a[(i + 1)..<close])
                let nameEnd = field.firstIndex(where: { $0 == ":" || $0 == "!" }) ?? field.endIndex
                let name = String(field[..<nameEnd])
                let value: JinjaValue
                if name.isEmpty {
                    guard auto < args.positional.count else { throw ChatTemplateError(.runtime, "Replacement index \(auto) out of range for positional args tuple") }
                    value = args.positional[auto]
                    auto += 1
                } else if let idx = Int(name) {
                    guard idx < args.positional.count else { throw ChatTemplateError(.runtime, "Replacement index \(idx) out of range for positional args tuple") }
                    value = args.positional[idx]
                } else {
                    guard let kw = args.keyword.first(where: { $0.0 == name }) else { throw ChatTemplateError(.runtime, "KeyError: '\(name)'") }
                    value = kw.1
                }
                out += value.pythonStr
                i = close + 1
            } else if c == "}" {
                guard i + 1 < a.count, a[i + 1] == "}" else { throw ChatTemplateError(.runtime, "Single '}' encountered in format string") }
                out += "}"
                i += 2
            } else {
                out.unicodeScalars.append(c)
                i += 1
            }
        }
        return out
    }
}

import Foundation
