/// One entry of tokenizer.json `added_tokens`.
public struct AddedToken: Sendable, Equatable {
    public let id: Int
    public let content: String
    public let special: Bool
    public let lstrip: Bool
    public let rstrip: Bool
    public let normalized: Bool
    public let singleWord: Bool
}

/// Finds added tokens in text and cuts them out before the model runs, as HF `AddedVocabulary` does:
/// leftmost-longest matching; `single_word` requires no word character on either side; `lstrip`/`rstrip`
/// swallow the whitespace before/after the token. Non-normalized tokens are matched in the raw input,
/// normalized ones in the normalized text.
struct AddedTokenMatcher {
    /// A trie over scalars; node 0 is the root. `tokenIndex[node]` >= 0 where a token ends.
    private var children: [[UInt32: Int32]] = [[:]]
    private var tokenIndex: [Int32] = [-1]
    private let tokens: [AddedToken]
    /// Scalars that begin some token, for a quick skip.
    private var firstScalars = Set<UInt32>()
    private var firstASCII = [Bool](repeating: false, count: 128)

    /// `contents[i]` is the text to match for `tokens[i]` (normalized if the token is).
    init(tokens: [AddedToken], contents: [String]) {
        self.tokens = tokens
        for (i, text) in contents.enumerated() where !text.isEmpty {
            var node = 0
            for s in text.unicodeScalars {
                if let c = children[node][s.value] {
                    node = Int(c)
                } else {
                    children.append([:])
                    tokenIndex.append(-1)
                    let c = children.count - 1
                    children[node][s.value] = Int32(c)
                    node = c
                }
            }
            if tokenIndex[node] < 0 { tokenIndex[node] = Int32(i) }
            let first = text.unicodeScalars.first!.value
            firstScalars.insert(first)
            if first < 128 { firstASCII[Int(first)] = true }
        }
    }

    var isEmpty: Bool { firstScalars.isEmpty }

    /// Longest token starting at i: (end, token index).
    private func longest(_ s: [Unicode.Scalar], at i: Int) -> (Int, Int)? {
        var node = 0
        var best: (Int, Int)? = nil
        var j = i
        while j < s.count, let c = children[node][s[j].value] {
            node = Int(c)
            j += 1
            if tokenIndex[node] >= 0 { best = (j, Int(tokenIndex[node])) }
        }
        return best
    }

    /// Pieces of `s` in order: text (`id == nil`) and added tokens (`id` set), covering `s` except whitespace
    /// swallowed by lstrip/rstrip. Empty text pieces are left out.
    func split(_ s: [Unicode.Scalar]) -> [(range: Range<Int>, id: Int?)] {
        if isEmpty { return [(0..<s.count, nil)] }
        var out: [(range: Range<Int>, id: Int?)] = []
        var startOffset = 0
        var i = 0
        while i < s.count {
            let v = s[i].value
            let maybe = v < 128 ? firstASCII[Int(v)] : firstScalars.contains(v)
            guard maybe, let (end, ti) = longest(s, at: i) else {
                i += 1
                continue
            }
            let tok = tokens[ti]
            if tok.singleWord {
                let startOK = i == 0 || !UnicodeClasses.isAlphanumericOrUnderscore(s[i - 1])
                let stopOK = end == s.count || !UnicodeClasses.isAlphanumericOrUnderscore(s[end])
                if !(startOK && stopOK) {
                    i += 1
                    continue
                }
            }
            var start = i
            var stop = end
            if tok.lstrip {
                while start > startOffset && UnicodeClasses.isWhitespace(s[start - 1]) { start -= 1 }
            }
            if tok.rstrip {
                while stop < s.count && UnicodeClasses.isWhitespace(s[stop]) { stop += 1 }
            }
            start = max(start, startOffset)
            if startOffset < start { out.append((startOffset..<start, nil)) }
            out.append((start..<stop, tok.id))
            startOffset = stop
            i = max(end, stop)
        }
        if startOffset < s.count { out.append((startOffset..<s.count, nil)) }
        return out
    }
}
