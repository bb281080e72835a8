import PagodaBench

/// A greedy longest-match tokenizer over a tiny vocabulary, where decoding then re-encoding merges tokens
/// (`[a][b]` comes back as `[ab]`), as real BPE tokenizers do. Id 0 is a special BOS that `addSpecialTokens` adds.
final class ToyTokenizer: BenchTokenizer {
    let pieces = ["<s>", "a", "b", "c", "ab", "ba", "abc", "cc", " ", " a", "d", "de", "e"]
    let addsBOS: Bool

    init(addsBOS: Bool = true) { self.addsBOS = addsBOS }

    var vocabSize: Int { pieces.count }
    func isSpecial(_ id: Int) -> Bool { id == 0 }

    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        ids.filter { !(skipSpecialTokens && isSpecial($0)) }.map { pieces[$0] }.joined()
    }

    func encode(_ text: String, addSpecialTokens: Bool) -> [Int] {
        var ids: [Int] = addSpecialTokens && addsBOS ? [0] : []
        var rest = Substring(text)
        while !rest.isEmpty {
            var best = -1
            var bestLen = 0
            for (id, piece) in pieces.enumerated() where rest.hasPrefix(piece) && piece.count > bestLen {
                best = id
                bestLen = piece.count
            }
            if best < 0 {  // unknown character: skip it
                rest = rest.dropFirst()
                continue
            }
            ids.append(best)
            rest = rest.dropFirst(bestLen)
        }
        return ids
    }
}
