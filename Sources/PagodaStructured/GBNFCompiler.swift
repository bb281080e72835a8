/// Compiles a GBNF grammar (llama.cpp's format, which vLLM's `guided_grammar` also takes) into a
/// `Grammar`: `name ::= alternatives` rules, `"literals"` with escapes, `[classes]` (ASCII
/// ranges, `^` negation), `( groups )`, `|`, `* + ? {m} {m,} {m,n}`, `#` comments; the start rule is
/// `root`. An undefined rule, a missing `root`, or left recursion is an `invalidGrammar` error.
public struct GBNFCompiler {
    let s: [Unicode.Scalar]
    var i = 0
    let b = GrammarBuilder()
    var ruleIds: [String: Int] = [:]
    var defined: Set<String> = []

    public static func compile(_ text: String) throws -> Grammar {
        var c = GBNFCompiler(s: Array(text.unicodeScalars))
        try c.parseRules()
        guard let root = c.ruleIds["root"], c.defined.contains("root") else { throw StructuredOutputError.invalidGrammar("no 'root' rule") }
        for (name, _) in c.ruleIds where !c.defined.contains(name) {
            throw StructuredOutputError.invalidGrammar("rule '\(name)' is used but not defined")
        }
        return try c.b.finish(root: root)
    }

    var peek: Unicode.Scalar? { i < s.count ? s[i] : nil }

    func fail(_ what: String) -> StructuredOutputError {
        let line = s[..<min(i, s.count)].filter { $0 == "\n" }.count + 1
        return .invalidGrammar("\(what) (line \(line))")
    }

    /// Skips spaces and comments; newlines too unless `stopAtNewline`.
    mutating func skip(newlines: Bool) {
        while let c = peek {
            if c == "#" {
                while let d = peek, d != "\n" { _ = d; i += 1 }
            } else if c == " " || c == "\t" || c == "\r" || (newlines && c == "\n") {
                i += 1
            } else {
                break
            }
        }
    }

    static func isNameChar(_ c: Unicode.Scalar) -> Bool {
        (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "-" || c == "_"
    }

    mutating func name() -> String? {
        let st = i
        while let c = peek, Self.isNameChar(c) { i += 1 }
        return i > st ? String(String.UnicodeScalarView(s[st..<i])) : nil
    }

    mutating func ruleId(_ n: String) -> Int {
        if let r = ruleIds[n] { return r }
        let r = b.declare(n)
        ruleIds[n] = r
        return r
    }

    /// Whether a `name ::=` starts at the current position.
    func atDefinition() -> Bool {
        var j = i
        while j < s.count, Self.isNameChar(s[j]) { j += 1 }
        guard j > i else { return false }
        while j < s.count, s[j] == " " || s[j] == "\t" { j += 1 }
        return j + 2 < s.count && s[j] == ":" && s[j + 1] == ":" && s[j + 2] == "="
    }

    mutating func parseRules() throws {
        skip(newlines: true)
        while peek != nil {
            guard let n = name() else { throw fail("expected a rule name") }
            skip(newlines: false)
            guard i + 2 < s.count, s[i] == ":", s[i + 1] == ":", s[i + 2] == "=" else { throw fail("expected '::=' after '\(n)'") }
            i += 3
            if defined.contains(n) { throw fail("rule '\(n)' is defined twice") }
            defined.insert(n)
            let r = ruleId(n)
            b.define(r, try alternatives(depth: 0))
            skip(newlines: true)
        }
    }

    mutating func alternatives(depth: Int) throws -> [[GrammarSymbol]] {
        guard depth < 64 else { throw fail("groups nested too deep") }
        var alts = [try sequence(depth: depth)]
        while true {
            skip(newlines: depth > 0)
            // A '|' may also start the next line of the same rule.
            if peek == "\n" {
                var j = i
                while j < s.count, s[j] == "\n" || s[j] == " " || s[j] == "\t" || s[j] == "\r" { j += 1 }
                if j < s.count, s[j] == "|" { i = j } else { break }
            }
            guard peek == "|" else { break }
            i += 1
            alts.append(try sequence(depth: depth))
        }
        return alts
    }

    mutating func sequence(depth: Int) throws -> [GrammarSymbol] {
        var seq: [GrammarSymbol] = []
        while true {
            skip(newlines: depth > 0)
            guard let c = peek, c != "|", c != ")", c != "\n" else { break }
            if depth == 0 && atDefinition() { break }
            var atom: [GrammarSymbol]
            switch c {
            case "\"": atom = try literal()
            case "[": atom = try charClass()
            case "(":
                i += 1
                let alts = try alternatives(depth: depth + 1)
                skip(newlines: true)
                guard peek == ")" else { throw fail("missing ')'") }
                i += 1
                atom = [b.rule("group", alts)]
            case ".":
                i += 1
                atom = [b.rule("any-char", [[.bytes(ByteSet(0x00...0x7F))], [b.utf8MultiByte()]])]
            default:
                guard let n = name() else { throw fail("unexpected '\(c)'") }
                atom = [.rule(ruleId(n))]
            }
            // Quantifiers.
            while let q = peek {
                if q == "*" {
                    i += 1; atom = [b.star(atom, "star")]
                } else if q == "+" {
                    i += 1; atom = b.repeated(atom, min: 1, max: nil, "plus")
                } else if q == "?" {
                    i += 1; atom = [b.optional(atom, "opt")]
                } else if q == "{" {
                    i += 1
                    skip(newlines: false)
                    let lo = number() ?? 0
                    skip(newlines: false)
                    var hi: Int? = lo
                    if peek == "," { i += 1; skip(newlines: false); hi = number() }
                    skip(newlines: false)
                    guard peek == "}" else { throw fail("bad repetition") }
                    i += 1
                    if lo > 1000 || (hi ?? 0) > 1000 || (hi.map { $0 < lo } ?? false) { throw fail("bad repetition bounds") }
                    atom = b.repeated(atom, min: lo, max: hi, "rep")
                } else {
                    break
                }
            }
            seq += atom
        }
        return seq
    }

    mutating func number() -> Int? {
        let st = i
        while let c = peek, c >= "0" && c <= "9" { i += 1 }
        return i > st ? Int(String(String.UnicodeScalarView(s[st..<i]))) : nil
    }

    /// One character, possibly escaped (`\n \t \r \\ \" \] \xHH \uHHHH`).
    mutating func char() throws -> Unicode.Scalar {
        guard let c = peek else { throw fail("unexpected end") }
        i += 1
        guard c == "\\" else { return c }
        guard let e = peek else { throw fail("unexpected end") }
        i += 1
        switch e {
        case "n": return "\n"
        case "t": return "\t"
        case "r": return "\r"
        case "x", "u", "U":
            let len = e == "x" ? 2 : e == "u" ? 4 : 8
            guard i + len <= s.count, let v = UInt32(String(String.UnicodeScalarView(s[i..<(i + len)])), radix: 16),
                let u = Unicode.Scalar(v)
            else { throw fail("bad escape") }
            i += len
            return u
        default: return e
        }
    }

    mutating func literal() throws -> [GrammarSymbol] {
        i += 1
        var text = String.UnicodeScalarView()
        while peek != "\"" {
            guard peek != nil else { throw fail("unterminated string") }
            text.append(try char())
        }
        i += 1
        return b.literal(String(text))
    }

    mutating func charClass() throws -> [GrammarSymbol] {
        i += 1
        var negate = false
        if peek == "^" { negate = true; i += 1 }
        var set = ByteSet()
        while peek != "]" {
            guard peek != nil else { throw fail("unterminated character class") }
            let lo = try char()
            var hi = lo
            if peek == "-", i + 1 < s.count, s[i + 1] != "]" { i += 1; hi = try char() }
            guard lo.isASCII, hi.isASCII else { throw fail("non-ASCII characters in a class are not supported") }
            guard hi.value >= lo.value else { throw fail("bad class range") }
            set.formUnion(ByteSet(UInt8(lo.value)...UInt8(hi.value)))
        }
        i += 1
        if negate {
            return [b.rule("not-class", [[.bytes(ByteSet(0x00...0x7F).subtracting(set))], [b.utf8MultiByte()]])]
        }
        return [.bytes(set)]
    }
}
