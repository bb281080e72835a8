import Foundation

/// A tokenizer.json `normalizer`: rewrites text before pre-tokenization (HF `tokenizers::normalizers`).
indirect enum Normalizer {
    case nfc, nfd, nfkc, nfkd
    case lowercase
    case stripAccents
    case strip(left: Bool, right: Bool)
    case prepend(String)
    case replace(SplitRegex, String)
    case byteLevel
    case sequence([Normalizer])

    init(json: JSONObject) throws {
        switch try json.type() {
        case "NFC": self = .nfc
        case "NFD": self = .nfd
        case "NFKC": self = .nfkc
        case "NFKD": self = .nfkd
        case "Lowercase": self = .lowercase
        case "StripAccents": self = .stripAccents
        case "Strip":
            self = .strip(left: try json.bool("strip_left", default: true), right: try json.bool("strip_right", default: true))
        case "Prepend": self = .prepend(try json.string("prepend"))
        case "Replace": self = .replace(try SplitRegex(patternObject: try json.object("pattern")), try json.string("content"))
        case "ByteLevel": self = .byteLevel
        case "Sequence": self = .sequence(try json.objects("normalizers").map { try Normalizer(json: $0) })
        case let t: throw TokenizerError.unsupportedComponent(path: json.path, field: json.name("type"), type: t)
        }
    }

    /// True when NFC leaves `s` unchanged for sure: every scalar is in a range with no decomposition, no
    /// canonical combining class and no composition with a neighbour in these ranges (below U+0300, Cyrillic,
    /// CJK ideographs, kana, Hangul syllables not followed by jamo). Saves the ICU call for most text.
    static func isNFCStable(_ s: String) -> Bool {
        for c in s.unicodeScalars {
            let v = c.value
            if v < 0x300 || (0x400...0x52F).contains(v) || (0x4E00...0x9FFF).contains(v) || (0x3040...0x3096).contains(v)
                || (0x30A0...0x30FF).contains(v) || (0xAC00...0xD7A3).contains(v)
                || (0xFF01...0xFF5E).contains(v) || (0x3000...0x3003).contains(v)
            {
                continue
            }
            return false
        }
        return true
    }

    /// Foundation's NFC on Linux leaves a precomposed LV syllable + trailing jamo (가 + ᆨ) apart; Unicode
    /// composes them (각). This finishes that one step.
    static func composeHangulLVT(_ s: String) -> String {
        let scalars = Array(s.unicodeScalars)
        guard scalars.contains(where: { (0x11A8...0x11C2).contains($0.value) }) else { return s }
        var out = String.UnicodeScalarView()
        var i = 0
        while i < scalars.count {
            let v = scalars[i].value
            if (0xAC00...0xD7A3).contains(v), (v - 0xAC00) % 28 == 0, i + 1 < scalars.count,
                (0x11A8...0x11C2).contains(scalars[i + 1].value)
            {
                out.append(Unicode.Scalar(v + scalars[i + 1].value - 0x11A7)!)
                i += 2
                continue
            }
            out.append(scalars[i])
            i += 1
        }
        return String(out)
    }

    func normalize(_ s: String) -> String {
        switch self {
        case .nfc: return Normalizer.isNFCStable(s) ? s : Normalizer.composeHangulLVT(s.precomposedStringWithCanonicalMapping)
        case .nfd: return s.decomposedStringWithCanonicalMapping
        case .nfkc: return Normalizer.composeHangulLVT(s.precomposedStringWithCompatibilityMapping)
        case .nfkd: return s.decomposedStringWithCompatibilityMapping
        case .lowercase:
            var out = String.UnicodeScalarView()
            for c in s.unicodeScalars { out.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars) }
            return String(out)
        case .stripAccents:
            var out = String.UnicodeScalarView()
            for c in s.unicodeScalars where c.properties.generalCategory != .nonspacingMark { out.append(c) }
            return String(out)
        case .strip(let left, let right):
            let scalars = Array(s.unicodeScalars)
            var a = 0
            var b = scalars.count
            if left { while a < b && UnicodeClasses.isWhitespace(scalars[a]) { a += 1 } }
            if right { while b > a && UnicodeClasses.isWhitespace(scalars[b - 1]) { b -= 1 } }
            return String(String.UnicodeScalarView(scalars[a..<b]))
        case .prepend(let p):
            return s.isEmpty ? s : p + s
        case .replace(let pattern, let content):
            let scalars = Array(s.unicodeScalars)
            let ms = pattern.matches(scalars)
            if ms.isEmpty { return s }
            var out = String.UnicodeScalarView()
            var last = 0
            for m in ms {
                out.append(contentsOf: scalars[last..<m.lowerBound])
                out.append(contentsOf: content.unicodeScalars)
                last = m.upperBound
            }
            out.append(contentsOf: scalars[last...])
            return String(out)
        case .byteLevel:
            var out: [Unicode.Scalar] = []
            ByteLevelAlphabet.encode(ArraySlice(s.unicodeScalars), into: &out)
            return String(String.UnicodeScalarView(out))
        case .sequence(let list):
            var t = s
            for n in list { t = n.normalize(t) }
            return t
        }
    }
}
