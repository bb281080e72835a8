import Foundation

/// A compiled pattern from tokenizer.json (`Split`, `Replace`): finds non-overlapping matches, left to right, as
/// Oniguruma (the reference's engine) does. Well-known tiktoken-style patterns run on a hand-written scanner
/// (`TiktokenScanner`), everything else on ICU (`NSRegularExpression`), whose syntax covers what real files use
/// (`\p{L}`, lookahead, possessive quantifiers, `(?i:...)`).
final class SplitRegex: @unchecked Sendable {
    private enum Engine {
        case scanner(TiktokenScanner)
        case icu(NSRegularExpression)
        case literal([Unicode.Scalar])
    }
    private let engine: Engine

    /// `pattern` is `{"String": s}` (literal) or `{"Regex": r}`.
    init(patternObject: JSONObject) throws {
        if let s = patternObject.dict["String"] as? String {
            engine = .literal(Array(s.unicodeScalars))
        } else if let r = patternObject.dict["Regex"] as? String {
            engine = try SplitRegex.compile(r, path: patternObject.path, field: patternObject.field)
        } else {
            throw TokenizerError.invalidField(
                path: patternObject.path, field: patternObject.field, reason: "expected {\"String\": ...} or {\"Regex\": ...}")
        }
    }

    /// A regex pattern (ICU unless it is a known tiktoken-style pattern).
    init(regex: String, path: String = "", field: String = "") throws {
        engine = try SplitRegex.compile(regex, path: path, field: field)
    }

    private static func compile(_ pattern: String, path: String, field: String) throws -> Engine {
        if let scanner = TiktokenScanner(pattern: pattern) { return .scanner(scanner) }
        do {
            return .icu(try NSRegularExpression(pattern: icuPattern(pattern), options: []))
        } catch {
            throw TokenizerError.invalidPattern(path: path, field: field, pattern: pattern, reason: "\(error)")
        }
    }

    /// Oniguruma's `\s`/`\S` are the White_Space property; ICU's `\s` lacks U+000B and U+0085. Rewrite them.
    static func icuPattern(_ p: String) -> String {
        var out = ""
        var it = p.unicodeScalars.makeIterator()
        while let c = it.next() {
            if c == "\\", let n = it.next() {
                if n == "s" { out += "\\p{White_Space}" } else if n == "S" { out += "\\P{White_Space}" } else {
                    out.unicodeScalars.append(c)
                    out.unicodeScalars.append(n)
                }
            } else {
                out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// Match ranges in scalar indices, ascending and non-overlapping; empty matches are dropped.
    func matches(_ s: [Unicode.Scalar]) -> [Range<Int>] {
        switch engine {
        case .scanner(let sc): return sc.matches(s)
        case .literal(let lit): return SplitRegex.literalMatches(lit, in: s)
        case .icu(let re): return SplitRegex.icuMatches(re, in: s)
        }
    }

    private static func literalMatches(_ lit: [Unicode.Scalar], in s: [Unicode.Scalar]) -> [Range<Int>] {
        guard !lit.isEmpty, s.count >= lit.count else { return [] }
        var out: [Range<Int>] = []
        var i = 0
        let first = lit[0]
        while i + lit.count <= s.count {
            if s[i] == first {
                var ok = true
                var k = 1
                while k < lit.count { if s[i + k] != lit[k] { ok = false; break }; k += 1 }
                if ok { out.append(i..<(i + lit.count)); i += lit.count; continue }
            }
            i += 1
        }
        return out
    }

    private static func icuMatches(_ re: NSRegularExpression, in s: [Unicode.Scalar]) -> [Range<Int>] {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: s)
        let string = String(view)
        // utf16 offset -> scalar index, for every scalar boundary.
        var toScalar = [Int](repeating: 0, count: string.utf16.count + 1)
        var u = 0
        for (i, c) in s.enumerated() {
            toScalar[u] = i
            u += c.value > 0xFFFF ? 2 : 1
        }
        toScalar[u] = s.count
        var out: [Range<Int>] = []
        for m in re.matches(in: string, options: [], range: NSRange(location: 0, length: u)) where m.range.length > 0 {
            out.append(toScalar[m.range.location]..<toScalar[m.range.location + m.range.length])
        }
        return out
    }
}

/// The GPT-2 / Llama 3 / Qwen2 pre-tokenizer regexes, matched by hand (same results as the regex engine,
/// several times faster than ICU). Only the exact pattern strings below are recognized.
struct TiktokenScanner {
    /// GPT-2 (also ByteLevel's built-in regex): `'s|...| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let llama3Pattern =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Pattern =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// true: Llama 3 / Qwen2 family; false: GPT-2.
    let tiktoken: Bool
    /// Longest digit run per match (Llama 3: 3, Qwen2: 1; GPT-2: unbounded).
    let maxDigits: Int

    init?(pattern: String) {
        switch pattern {
        case TiktokenScanner.gpt2Pattern: tiktoken = false; maxDigits = Int.max
        case TiktokenScanner.llama3Pattern: tiktoken = true; maxDigits = 3
        case TiktokenScanner.qwen2Pattern: tiktoken = true; maxDigits = 1
        default: return nil
        }
    }

    @inline(__always) private static func isCRLF(_ c: Unicode.Scalar) -> Bool { c == "\r" || c == "\n" }
    @inline(__always) private static func isOther(_ c: Unicode.Scalar) -> Bool {
        !UnicodeClasses.isWhitespace(c) && !UnicodeClasses.isLetter(c) && !UnicodeClasses.isNumber(c)
    }

    /// Length of a contraction (`'s`, `'re`, ...) at i, or 0. Case-insensitive for the tiktoken family
    /// (Oniguruma folds U+017F LATIN SMALL LETTER LONG S to s).
    private func contraction(_ s: [Unicode.Scalar], _ i: Int) -> Int {
        let n = s.count
        guard s[i] == "'", i + 1 < n else { return 0 }
        func lower(_ c: Unicode.Scalar) -> Unicode.Scalar {
            if !tiktoken { return c }
            if c.value >= 0x41 && c.value <= 0x5A { return Unicode.Scalar(c.value + 32)! }
            if c.value == 0x17F { return "s" }
            return c
        }
        let c1 = lower(s[i + 1])
        if c1 == "s" || c1 == "t" || c1 == "m" || c1 == "d" { return 2 }
        guard i + 2 < n else { return 0 }
        let c2 = lower(s[i + 2])
        if (c1 == "r" && c2 == "e") || (c1 == "v" && c2 == "e") || (c1 == "l" && c2 == "l") { return 3 }
        return 0
    }

    func matches(_ s: [Unicode.Scalar]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        out.reserveCapacity(s.count / 3 + 1)
        let n = s.count
        var i = 0
        while i < n {
            let end = matchEnd(s, i)
            out.append(i..<end)
            i = end
        }
        return out
    }

    /// End of the match that starts at i (every position starts one: each scalar is a letter, number, space or other).
    private func matchEnd(_ s: [Unicode.Scalar], _ i: Int) -> Int {
        let n = s.count
        let c = s[i]
        let k = contraction(s, i)
        if k > 0 { return i + k }
        let isL = UnicodeClasses.isLetter(c)
        let isN = UnicodeClasses.isNumber(c)
        let isW = UnicodeClasses.isWhitespace(c)
        // Letters, with an optional one-scalar prefix.
        var j = -1
        if isL {
            j = i
        } else if i + 1 < n && UnicodeClasses.isLetter(s[i + 1]) {
            if tiktoken ? (!TiktokenScanner.isCRLF(c) && !isN) : c == " " { j = i + 1 }
        }
        if j >= 0 {
            j += 1
            while j < n && UnicodeClasses.isLetter(s[j]) { j += 1 }
            return j
        }
        // Numbers.
        if tiktoken {
            if isN {
                j = i + 1
                while j < n && j - i < maxDigits && UnicodeClasses.isNumber(s[j]) { j += 1 }
                return j
            }
        } else {
            if isN {
                j = i
            } else if c == " " && i + 1 < n && UnicodeClasses.isNumber(s[i + 1]) {
                j = i + 1
            }
            if j >= 0 {
                j += 1
                while j < n && UnicodeClasses.isNumber(s[j]) { j += 1 }
                return j
            }
        }
        // Other symbols, with an optional leading space (and trailing newlines for the tiktoken family).
        j = -1
        if !isW && !isL && !isN {
            j = i
        } else if c == " " && i + 1 < n && TiktokenScanner.isOther(s[i + 1]) {
            j = i + 1
        }
        if j >= 0 {
            j += 1
            while j < n && TiktokenScanner.isOther(s[j]) { j += 1 }
            if tiktoken { while j < n && TiktokenScanner.isCRLF(s[j]) { j += 1 } }
            return j
        }
        // Whitespace (c is whitespace here).
        var e = i + 1
        while e < n && UnicodeClasses.isWhitespace(s[e]) { e += 1 }
        if tiktoken {
            // \s*[\r\n]+ : up to the last newline in the run.
            var k = e - 1
            while k >= i {
                if TiktokenScanner.isCRLF(s[k]) { return k + 1 }
                k -= 1
            }
        }
        // \s+(?!\S) then \s+
        if e == n { return e }
        if e - 1 > i { return e - 1 }
        return e
    }
}
