/// The bytes each token id stands for in generated text, for constrained decoding (a grammar
/// matches bytes, and a token's text alone loses bytes of split UTF-8 characters).
extension Tokenizer {
    /// For every id below `vocabSize`: its bytes, or nil for special added tokens and unknown ids.
    /// Byte-level vocabularies map each scalar through GPT-2's byte alphabet; SentencePiece-style ones
    /// turn `<0xAB>` into the byte and `▁` into a space.
    public func tokenByteStrings() -> [[UInt8]?] {
        let byteLevel = decoder.map { Self.containsByteLevel($0) } ?? false
        var out: [[UInt8]?] = []
        out.reserveCapacity(vocabSize)
        for id in 0..<vocabSize {
            if let added = addedById[id] {
                out.append(added.special ? nil : Array(added.content.utf8))
                continue
            }
            guard let t = idToToken(id) else { out.append(nil); continue }
            if byteLevel {
                var bytes: [UInt8] = []
                out.append(ByteLevelAlphabet.decode(t, into: &bytes) ? bytes : Array(t.utf8))
            } else if let b = TokenDecoder.byteToken(t) {
                out.append([b])
            } else {
                out.append(Array(t.replacingOccurrences(of: "\u{2581}", with: " ").utf8))
            }
        }
        return out
    }

    static func containsByteLevel(_ d: TokenDecoder) -> Bool {
        switch d {
        case .byteLevel: return true
        case .sequence(let list): return list.contains { containsByteLevel($0) }
        default: return false
        }
    }
}
