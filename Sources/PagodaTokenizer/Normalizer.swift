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

    func normalize(_ s: String) -> String {
        switch self {
        case .nfc: return s.precomposedStringWithCanonicalMapping
        case .nfd: return s.decomposedStringWithCanonicalMapping
        case .nfkc: return s.precomposedStringWithCompatibilityMapping
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
