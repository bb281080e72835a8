/// What the serving benchmark needs from a tokenizer: encode, decode, the vocabulary and which ids are special.
///
/// PagodaTokenizer's `Tokenizer` conforms (see `Tokenizer+BenchTokenizer.swift`); tests may supply a small
/// tokenizer of their own to exercise the prompt-length adjustment.
public protocol BenchTokenizer: AnyObject {
    func encode(_ text: String, addSpecialTokens: Bool) -> [Int]
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String
    /// Number of ids, added tokens included.
    var vocabSize: Int { get }
    func isSpecial(_ id: Int) -> Bool
}

extension BenchTokenizer {
    /// How many tokens `encode(_, addSpecialTokens: true)` adds around any text (a BOS, for Llama-style tokenizers),
    /// vLLM's `num_special_tokens_to_add()`.
    public var numSpecialTokensToAdd: Int {
        encode("", addSpecialTokens: true).count - encode("", addSpecialTokens: false).count
    }

    /// Ids a random prompt may use: every id that is not special (vLLM removes `all_special_ids`).
    public func allowedRandomTokenIds() -> [Int] {
        (0..<vocabSize).filter { !isSpecial($0) }
    }
}
