/// Compiles a regular expression (the subset `guided_regex` users write: literals, escapes `\d \w
/// \s \D \W \S`, classes `[...]` and `[^...]` over ASCII, `.`, groups `(...)`, `(?:...)`,
/// `(?P<name>...)`, alternation, quantifiers `* + ? {m} {m,} {m,n}` with optional lazy `?`, and
/// anchors `^`/`$` at the ends) into a `Grammar` matching exactly the whole strings it matches.
/// Back-references and look-around are `invalidRegex` errors.
public struct RegexCompiler {
    let s: [Unicode.Scalar]
    var i = 0
    let b: GrammarBuilder

    public static func compile(_ pattern: String) throws -> Grammar {
        let b = GrammarBuilder()
        let root = b.declare("root")
        b.define(root, [try fragment(pattern, into: b)])
        return try b.finish(root: root)
    }

    /// The symbols of `pattern` inside an existing builder (GBNF and JSON schemas reuse it).
    public static func fragment(_ pattern: String, into b: GrammarBuilder) throws -> [GrammarSymbol] {
        var c = RegexCompiler(s: Array(pattern.unicodeScalars), b: b)
        if c.peek == "^" { c.i += 1 }
        let alts = try c.alternation(depth: 0)
        guard c.i == c.s.count else { throw StructuredOutputError.invalidRegex("unexpected '\(c.s[c.i])' at \(c.i)") }
        return alts.count == 1 ? alts[0] : [b.rule("regex-alt", alts)]
    }

    var peek: Unicode.Scalar? { i < s.count ? s[i] : nil }

    mutating func alternation(depth: Int) throws -> [[GrammarSymbol]] {
        guard depth < 64 else { throw StructuredOutputError.invalidRegex("groups nested too deep") }
        var alts: [[GrammarSymbol]] = [try sequence(depth: depth)]
        while peek == "|" {
            i += 1
            alts.append(try sequence(depth: depth))
        }
        return alts
    }

    mutating func sequence(depth: Int) throws -> [GrammarSymbol] {
        var seq: [GrammarSymbol] = []
        while let c = peek, c != "|", c != ")" {
            if c == "$" && i == s.count - 1 { i += 1; break }
            let atom = try self.atom(depth: depth)
            seq += try quantified(atom)
        }
        return seq
    }

    mutating func quantified(_ atom: [GrammarSymbol]) throws -> [GrammarSymbol] {
        var out = atom
        while let c = peek {
            var lo = 0, hi: Int? = nil
            switch c {
            case "*": i += 1
            case "+": i += 1; lo = 1
            case "?": i += 1; hi = 1
            case "{":
                guard let (a, z) = try braces() else { return out }
                lo = a; hi = z
            default: return out
            }
            if peek == "?" || peek == "+" { i += 1 }  // lazy / possessive: same language
            if let hi, hi > 1000 || lo > 1000 { throw StructuredOutputError.invalidRegex("repetition bound above 1000") }
            out = b.repeated(out, min: lo, max: hi, "regex-rep")
        }
        return out
    }

    /// `{m}`, `{m,}`, `{m,n}`; nil (and nothing consumed) if the brace is a literal.
    mutating func braces() throws -> (Int, Int?)? {
        var j = i + 1
        func num() -> Int? {
            let st = j
            while j < s.count, s[j].properties.numericType != nil, s[j].isASCII { j += 1 }
            return j > st ? Int(String(String.UnicodeScalarView(s[st..<j]))) : nil
        }
        guard let lo = num() else { return nil }
        var hi: Int? = lo
        if j < s.count, s[j] == "," {
            j += 1
            hi = num()
        }
        guard j < s.count, s[j] == "}" else { return nil }
        if let hi, hi < lo { throw StructuredOutputError.invalidRegex("{\(lo),\(hi)} has max < min") }
        i = j + 1
        return (lo, hi)
    }

    mutating func atom(depth: Int) throws -> [GrammarSymbol] {
        let c = s[i]
        i += 1
        switch c {
        case "(":
            if peek == "?" {
                i += 1
                if peek == ":" {
                    i += 1
                } else if peek == "P" || peek == "<" {
                    if peek == "P" { i += 1 }
                    guard peek == "<" else { throw StructuredOutputError.invalidRegex("unsupported group syntax at \(i)") }
                    if i + 1 < s.count, s[i + 1] == "=" || s[i + 1] == "!" {
                        throw StructuredOutputError.invalidRegex("look-behind is not supported")
                    }
                    while let p = peek, p != ">" { i += 1 }
                    i += 1
                } else {
                    throw StructuredOutputError.invalidRegex("look-around and inline flags are not supported (at \(i))")
                }
            }
            let alts = try alternation(depth: depth + 1)
            guard peek == ")" else { throw StructuredOutputError.invalidRegex("missing ')'") }
            i += 1
            return [b.rule("regex-group", alts)]
        case "[": return try charClass()
        case ".":
            return [b.rule("regex-dot", [[.bytes(ByteSet(0x00...0x7F).ascii.subtracting(UInt8(ascii: "\n")))], [b.utf8MultiByte()]])]
        case "\\": return try escape(inClass: false).symbols(b)
        case "*", "+", "?": throw StructuredOutputError.invalidRegex("nothing to repeat at \(i - 1)")
        default: return b.literal(String(c))
        }
    }

    /// What an escape stands for: a byte set (ASCII), possibly with any non-ASCII character.
    struct ClassPart {
        var set: ByteSet
        var nonASCII: Bool
        func symbols(_ b: GrammarBuilder) -> [GrammarSymbol] {
            nonASCII ? [b.rule("regex-class", [[.bytes(set)], [b.utf8MultiByte()]])] : [.bytes(set)]
        }
    }

    static let digit = ByteSet(0x30...0x39)
    static let word = ByteSet(0x30...0x39).union(ByteSet(0x41...0x5A)).union(ByteSet(0x61...0x7A)).union(ByteSet(UInt8(ascii: "_")))
    static let space = ByteSet(bytes: [0x20, 0x09, 0x0A, 0x0D, 0x0B, 0x0C])
    static let asciiAll = ByteSet(0x00...0x7F)

    mutating func escape(inClass: Bool) throws -> ClassPart {
        guard let c = peek else { throw StructuredOutputError.invalidRegex("trailing backslash") }
        i += 1
        switch c {
        case "d": return ClassPart(set: Self.digit, nonASCII: false)
        case "w": return ClassPart(set: Self.word, nonASCII: false)
        case "s": return ClassPart(set: Self.space, nonASCII: false)
        case "D": return ClassPart(set: Self.asciiAll.subtracting(Self.digit), nonASCII: true)
        case "W": return ClassPart(set: Self.asciiAll.subtracting(Self.word), nonASCII: true)
        case "S": return ClassPart(set: Self.asciiAll.subtracting(Self.space), nonASCII: true)
        case "n": return ClassPart(set: ByteSet(0x0A), nonASCII: false)
        case "t": return ClassPart(set: ByteSet(0x09), nonASCII: false)
        case "r": return ClassPart(set: ByteSet(0x0D), nonASCII: false)
        case "f": return ClassPart(set: ByteSet(0x0C), nonASCII: false)
        case "v": return ClassPart(set: ByteSet(0x0B), nonASCII: false)
        case "x":
            guard i + 2 <= s.count, let v = UInt8(String(String.UnicodeScalarView(s[i..<(i + 2)])), radix: 16), v < 0x80 else {
                throw StructuredOutputError.invalidRegex("\\x escapes must be ASCII")
            }
            i += 2
            return ClassPart(set: ByteSet(v), nonASCII: false)
        case _ where c.properties.numericType != nil && c.isASCII:
            throw StructuredOutputError.invalidRegex("back-references are not supported")
        case "b", "B", "A", "Z", "z":
            throw StructuredOutputError.invalidRegex("anchor \\\(c) is not supported")
        default:
            guard c.isASCII else { throw StructuredOutputError.invalidRegex("non-ASCII escape") }
            return ClassPart(set: ByteSet(UInt8(c.value)), nonASCII: false)
        }
    }

    /// `[...]` / `[^...]` over ASCII characters (a negated class also matches any non-ASCII one).
    mutating func charClass() throws -> [GrammarSymbol] {
        var negate = false
        if peek == "^" { negate = true; i += 1 }
        var set = ByteSet()
        var nonASCII = false
        var first = true
        while true {
            guard let c = peek else { throw StructuredOutputError.invalidRegex("missing ']'") }
            if c == "]" && !first { i += 1; break }
            first = false
            i += 1
            var lo: UInt8
            if c == "\\" {
                let part = try escape(inClass: true)
                if part.nonASCII || isSingle(part.set) == nil {
                    set.formUnion(part.set); nonASCII = nonASCII || part.nonASCII
                    continue
                }
                lo = isSingle(part.set)!
            } else {
                guard c.isASCII else { throw StructuredOutputError.invalidRegex("non-ASCII characters in a class are not supported") }
                lo = UInt8(c.value)
            }
            if peek == "-", i + 1 < s.count, s[i + 1] != "]" {
                i += 1
                var hiScalar = s[i]
                i += 1
                if hiScalar == "\\" {
                    let part = try escape(inClass: true)
                    guard let v = isSingle(part.set) else { throw StructuredOutputError.invalidRegex("bad class range") }
                    hiScalar = Unicode.Scalar(v)
                }
                guard hiScalar.isASCII, UInt8(hiScalar.value) >= lo else { throw StructuredOutputError.invalidRegex("bad class range") }
                set.formUnion(ByteSet(lo...UInt8(hiScalar.value)))
            } else {
                set.insert(lo)
            }
        }
        if negate {
            return ClassPart(set: Self.asciiAll.subtracting(set), nonASCII: !nonASCII).symbols(b)
        }
        return ClassPart(set: set, nonASCII: nonASCII).symbols(b)
    }

    func isSingle(_ set: ByteSet) -> UInt8? {
        var found: UInt8? = nil
        for v in 0...255 where set.contains(UInt8(v)) {
            if found != nil { return nil }
            found = UInt8(v)
        }
        return found
    }
}

extension ByteSet {
    /// The set without `b`.
    func subtracting(_ b: UInt8) -> ByteSet { var s = self; if s.contains(b) { s = s.subtracting(ByteSet(b)) }; return s }
    /// The set without the members of `o`.
    func subtracting(_ o: ByteSet) -> ByteSet { var s = self; s.w0 &= ~o.w0; s.w1 &= ~o.w1; s.w2 &= ~o.w2; s.w3 &= ~o.w3; return s }
}
