/// Prompt logprobs one step computed for one request: the logprob of prompt tokens
/// `firstTokenIndex ..< firstTokenIndex + entries.count`, each from the logits of the position
/// before it (so token 0 never has one). A prefill chunk gives one chunk; the scheduler joins them.
public struct PromptLogprobsChunk: Sendable, Codable, Equatable {
    public var reqId: String
    /// Index in the prompt of the token `entries[0]` is about (at least 1).
    public var firstTokenIndex: Int
    public var entries: [TokenLogprob]

    public init(reqId: String, firstTokenIndex: Int, entries: [TokenLogprob]) {
        self.reqId = reqId; self.firstTokenIndex = firstTokenIndex; self.entries = entries
    }
}
