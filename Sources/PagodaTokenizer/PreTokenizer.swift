/// One piece of text on its way to the model. `atStart`: it begins at offset 0 of the input (Metaspace's
/// `prepend_scheme: first` looks at this). `byteLevel`: already mapped to the byte-level alphabet.
struct PreToken {
    var scalars: [Unicode.Scalar]
    var atStart: Bool
}

/// How a `Split`-like pre-tokenizer treats the matches (HF `SplitDelimiterBehavior`).
enum SplitBehavior: String {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"

    /// Turns match ranges over `s` into pieces, as `NormalizedString::split` does.
    func split(_ token: PreToken, matches: [Range<Int>], invert: Bool, into out: inout [PreToken]) {
        let s = token.scalars
        // All segments, matches and gaps alternating as found: (range, isMatch).
        var segs: [(Range<Int>, Bool)] = []
        segs.reserveCapacity(matches.count * 2 + 1)
        var prev = 0
        for m in matches {
            if prev < m.lowerBound { segs.append((prev..<m.lowerBound, invert)) }
            segs.append((m, !invert))
            prev = m.upperBound
        }
        if prev < s.count { segs.append((prev..<s.count, invert)) }

        var merged: [Range<Int>] = []
        merged.reserveCapacity(segs.count)
        switch self {
        case .isolated:
            merged = segs.map { $0.0 }
        case .removed:
            merged = segs.filter { !$0.1 }.map { $0.0 }
        case .mergedWithPrevious:
            var previousMatch = false
            for (r, isMatch) in segs {
                if isMatch && !previousMatch, let last = merged.last {
                    merged[merged.count - 1] = last.lowerBound..<r.upperBound
                } else {
                    merged.append(r)
                }
                previousMatch = isMatch
            }
        case .mergedWithNext:
            var previousMatch = false
            for (r, isMatch) in segs.reversed() {
                if isMatch && !previousMatch, let last = merged.last {
                    merged[merged.count - 1] = r.lowerBound..<last.upperBound
                } else {
                    merged.append(r)
                }
                previousMatch = isMatch
            }
            merged.reverse()
        case .contiguous:
            var previousMatch = false
            for (r, isMatch) in segs {
                if isMatch == previousMatch, let last = merged.last {
                    merged[merged.count - 1] = last.lowerBound..<r.upperBound
                } else {
                    merged.append(r)
                }
                previousMatch = isMatch
            }
        }
        for r in merged where !r.isEmpty {
            out.append(PreToken(scalars: Array(s[r]), atStart: token.atStart && r.lowerBound == 0))
        }
    }
}

/// Metaspace's `prepend_scheme`.
enum PrependScheme: String {
    case always, never, first
}

/// A tokenizer.json `pre_tokenizer`: cuts normalized text into words the model encodes one by one.
indirect enum PreTokenizer {
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case split(SplitRegex, SplitBehavior, invert: Bool)
    case digits(individual: Bool)
    case punctuation(SplitBehavior)
    case whitespace
    case whitespaceSplit
    case bert
    case metaspace(replacement: Unicode.Scalar, scheme: PrependScheme, split: Bool)
    case sequence([PreTokenizer])

    /// GPT-2's regex, which ByteLevel applies when `use_regex` is true.
    static let gpt2Regex = try! SplitRegex(regex: TiktokenScanner.gpt2Pattern)
    /// `\w+|[^\w\s]+`, the Whitespace pre-tokenizer's regex.
    static let wordRegex = try! SplitRegex(regex: #"\w+|[^\w\s]+"#)

    init(json: JSONObject) throws {
        func behavior(_ key: String, default d: SplitBehavior) throws -> SplitBehavior {
            guard let raw = try json.optionalString(key) else { return d }
            guard let b = SplitBehavior(rawValue: raw) else {
                throw TokenizerError.invalidField(path: json.path, field: json.name(key), reason: "unknown behavior \"\(raw)\"")
            }
            return b
        }
        switch try json.type() {
        case "ByteLevel":
            self = .byteLevel(
                addPrefixSpace: try json.bool("add_prefix_space", default: true), useRegex: try json.bool("use_regex", default: true))
        case "Split":
            self = .split(
                try SplitRegex(patternObject: try json.object("pattern")), try behavior("behavior", default: .isolated),
                invert: try json.bool("invert", default: false))
        case "Digits": self = .digits(individual: try json.bool("individual_digits", default: false))
        case "Punctuation": self = .punctuation(try behavior("behavior", default: .isolated))
        case "Whitespace": self = .whitespace
        case "WhitespaceSplit": self = .whitespaceSplit
        case "BertPreTokenizer": self = .bert
        case "Metaspace":
            let rep = try json.string("replacement")
            guard rep.unicodeScalars.count == 1, let r = rep.unicodeScalars.first else {
                throw TokenizerError.invalidField(path: json.path, field: json.name("replacement"), reason: "expected one character")
            }
            var scheme: PrependScheme = .always
            if let raw = try json.optionalString("prepend_scheme") {
                guard let s = PrependScheme(rawValue: raw) else {
                    throw TokenizerError.invalidField(path: json.path, field: json.name("prepend_scheme"), reason: "unknown scheme \"\(raw)\"")
                }
                scheme = s
            } else if json.dict["add_prefix_space"] != nil {
                scheme = try json.bool("add_prefix_space", default: true) ? .always : .never
            }
            self = .metaspace(replacement: r, scheme: scheme, split: try json.bool("split", default: true))
        case "Sequence": self = .sequence(try json.objects("pretokenizers").map { try PreTokenizer(json: $0) })
        case let t: throw TokenizerError.unsupportedComponent(path: json.path, field: json.name("type"), type: t)
        }
    }

    /// Whether the pieces come out in the byte-level alphabet.
    var isByteLevel: Bool {
        switch self {
        case .byteLevel: return true
        case .sequence(let list): return list.contains { $0.isByteLevel }
        default: return false
        }
    }

    func preTokenize(_ tokens: [PreToken]) -> [PreToken] {
        if case .sequence(let list) = self {
            var t = tokens
            for p in list { t = p.preTokenize(t) }
            return t
        }
        var out: [PreToken] = []
        out.reserveCapacity(tokens.count * 2)
        for t in tokens { apply(t, into: &out) }
        return out
    }

    private func apply(_ token: PreToken, into out: inout [PreToken]) {
        let s = token.scalars
        switch self {
        case .byteLevel(let addPrefixSpace, let useRegex):
            var t = token
            if addPrefixSpace && t.scalars.first != " " { t.scalars.insert(" ", at: 0) }
            var pieces: [PreToken] = []
            if useRegex {
                SplitBehavior.isolated.split(t, matches: PreTokenizer.gpt2Regex.matches(t.scalars), invert: false, into: &pieces)
            } else if !t.scalars.isEmpty {
                pieces = [t]
            }
            for p in pieces {
                var mapped: [Unicode.Scalar] = []
                mapped.reserveCapacity(p.scalars.count)
                ByteLevelAlphabet.encode(p.scalars[...], into: &mapped)
                out.append(PreToken(scalars: mapped, atStart: p.atStart))
            }
        case .split(let re, let behavior, let invert):
            behavior.split(token, matches: re.matches(s), invert: invert, into: &out)
        case .digits(let individual):
            let ms = PreTokenizer.runs(s, individual: individual, UnicodeClasses.isNumber)
            (individual ? SplitBehavior.isolated : .contiguous).split(token, matches: ms, invert: false, into: &out)
        case .punctuation(let behavior):
            behavior.split(token, matches: PreTokenizer.runs(s, individual: true, UnicodeClasses.isPunctuation), invert: false, into: &out)
        case .whitespace:
            SplitBehavior.removed.split(token, matches: PreTokenizer.wordRegex.matches(s), invert: true, into: &out)
        case .whitespaceSplit:
            SplitBehavior.removed.split(token, matches: PreTokenizer.runs(s, individual: false, UnicodeClasses.isWhitespace), invert: false, into: &out)
        case .bert:
            var tmp: [PreToken] = []
            SplitBehavior.removed.split(token, matches: PreTokenizer.runs(s, individual: false, UnicodeClasses.isWhitespace), invert: false, into: &tmp)
            for t in tmp {
                SplitBehavior.isolated.split(t, matches: PreTokenizer.runs(t.scalars, individual: true, UnicodeClasses.isPunctuation), invert: false, into: &out)
            }
        case .metaspace(let rep, let scheme, let split):
            var t = token
            t.scalars = s.map { $0 == " " ? rep : $0 }
            let prepend = scheme == .always || (scheme == .first && token.atStart)
            if prepend && t.scalars.first != rep { t.scalars.insert(rep, at: 0) }
            if split {
                var ms: [Range<Int>] = []
                for (i, c) in t.scalars.enumerated() where c == rep { ms.append(i..<(i + 1)) }
                SplitBehavior.mergedWithNext.split(t, matches: ms, invert: false, into: &out)
            } else if !t.scalars.isEmpty {
                out.append(t)
            }
        case .sequence:
            out.append(contentsOf: preTokenize([token]))
        }
    }

    /// Ranges of scalars satisfying `pred`: each one alone (`individual`) or maximal runs.
    static func runs(_ s: [Unicode.Scalar], individual: Bool, _ pred: (Unicode.Scalar) -> Bool) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var i = 0
        while i < s.count {
            if pred(s[i]) {
                var j = i + 1
                if !individual { while j < s.count && pred(s[j]) { j += 1 } }
                out.append(i..<j)
                i = j
            } else {
                i += 1
            }
        }
        return out
    }
}
