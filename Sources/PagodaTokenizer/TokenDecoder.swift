import Foundation

/// A tokenizer.json `decoder`: turns token strings back into text (HF `Decoder::decode_chain`, then joined).
indirect enum TokenDecoder {
    case byteLevel
    case byteFallback
    case fuse
    case strip(content: Unicode.Scalar, start: Int, stop: Int)
    case replace(SplitRegex, String)
    case metaspace(replacement: Unicode.Scalar, stripFirst: Bool)
    case wordPiece(prefix: String, cleanup: Bool)
    case bpeSuffix(String)
    case sequence([TokenDecoder])

    init(json: JSONObject) throws {
        switch try json.type() {
        case "ByteLevel": self = .byteLevel
        case "ByteFallback": self = .byteFallback
        case "Fuse": self = .fuse
        case "Strip":
            let c = try json.string("content")
            guard c.unicodeScalars.count == 1 else {
                throw TokenizerError.invalidField(path: json.path, field: json.name("content"), reason: "expected one character")
            }
            self = .strip(content: c.unicodeScalars.first!, start: try json.int("start", default: 0), stop: try json.int("stop", default: 0))
        case "Replace": self = .replace(try SplitRegex(patternObject: try json.object("pattern")), try json.string("content"))
        case "Metaspace":
            let rep = try json.string("replacement")
            guard rep.unicodeScalars.count == 1 else {
                throw TokenizerError.invalidField(path: json.path, field: json.name("replacement"), reason: "expected one character")
            }
            var strip = true
            if let scheme = try json.optionalString("prepend_scheme") {
                strip = scheme != "never"
            } else if json.dict["add_prefix_space"] != nil {
                strip = try json.bool("add_prefix_space", default: true)
            }
            self = .metaspace(replacement: rep.unicodeScalars.first!, stripFirst: strip)
        case "WordPiece":
            self = .wordPiece(prefix: try json.optionalString("prefix") ?? "##", cleanup: try json.bool("cleanup", default: true))
        case "BPEDecoder": self = .bpeSuffix(try json.optionalString("suffix") ?? "</w>")
        case "Sequence": self = .sequence(try json.objects("decoders").map { try TokenDecoder(json: $0) })
        case let t: throw TokenizerError.unsupportedComponent(path: json.path, field: json.name("type"), type: t)
        }
    }

    func decodeChain(_ tokens: [String]) -> [String] {
        switch self {
        case .byteLevel:
            var bytes: [UInt8] = []
            for t in tokens where !ByteLevelAlphabet.decode(t, into: &bytes) { bytes.append(contentsOf: t.utf8) }
            return [String(decoding: bytes, as: UTF8.self)]
        case .byteFallback:
            var out: [String] = []
            var pending: [UInt8] = []
            func flush() {
                if pending.isEmpty { return }
                if let s = String(validating: pending, as: UTF8.self) {
                    out.append(s)
                } else {
                    for _ in pending { out.append("\u{FFFD}") }
                }
                pending.removeAll()
            }
            for t in tokens {
                if let b = TokenDecoder.byteToken(t) {
                    pending.append(b)
                } else {
                    flush()
                    out.append(t)
                }
            }
            flush()
            return out
        case .fuse:
            return [tokens.joined()]
        case .strip(let content, let start, let stop):
            return tokens.map { t in
                let cs = Array(t.unicodeScalars)
                var a = 0
                while a < start && a < cs.count && cs[a] == content { a += 1 }
                var b = cs.count
                var k = 0
                while k < stop && b > a && cs[b - 1] == content { b -= 1; k += 1 }
                return String(String.UnicodeScalarView(cs[a..<b]))
            }
        case .replace(let pattern, let content):
            return tokens.map { Normalizer.replace(pattern, content).normalize($0) }
        case .metaspace(let rep, let stripFirst):
            return tokens.enumerated().map { (i, t) in
                var v = String.UnicodeScalarView()
                for c in t.unicodeScalars {
                    if c == rep {
                        if !(i == 0 && stripFirst) { v.append(" ") }
                    } else {
                        v.append(c)
                    }
                }
                return String(v)
            }
        case .wordPiece(let prefix, let cleanup):
            return tokens.enumerated().map { (i, t) in
                var s = t
                if i != 0 {
                    if s.hasPrefix(prefix) { s = String(s.dropFirst(prefix.count)) } else { s = " " + s }
                }
                if cleanup { s = TokenDecoder.cleanup(s) }
                return s
            }
        case .bpeSuffix(let suffix):
            return tokens.enumerated().map { (i, t) in
                t.replacingOccurrences(of: suffix, with: i == tokens.count - 1 ? "" : " ")
            }
        case .sequence(let list):
            var t = tokens
            for d in list { t = d.decodeChain(t) }
            return t
        }
    }

    /// `<0xAB>` -> 0xAB.
    static func byteToken(_ t: String) -> UInt8? {
        let u = t.utf8
        guard u.count == 6, t.hasPrefix("<0x"), t.hasSuffix(">") else { return nil }
        return UInt8(t.dropFirst(3).dropLast(), radix: 16)
    }

    /// transformers' `clean_up_tokenization` (used by the WordPiece decoder).
    static func cleanup(_ s: String) -> String {
        var t = s
        for (a, b) in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
            (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]
        {
            t = t.replacingOccurrences(of: a, with: b)
        }
        return t
    }
}
