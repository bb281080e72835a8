/// One entry of vLLM's `prompt_logprobs` (its `Logprob`): the logprob of a token at a prompt
/// position, its rank in the vocabulary and its text.
public struct PromptLogprobEntry: Sendable, Codable, Equatable {
    public var logprob: Double
    public var rank: Int?
    public var decodedToken: String?
    public init(logprob: Double, rank: Int?, decodedToken: String?) {
        self.logprob = logprob; self.rank = rank; self.decodedToken = decodedToken
    }
    enum CodingKeys: String, CodingKey { case logprob, rank, decodedToken = "decoded_token" }
}

/// vLLM's `prompt_logprobs`: one entry per prompt token, `null` for the first; each maps token id
/// (a string in JSON) to its entry — the prompt token itself and the top `prompt_logprobs` alternatives.
public typealias PromptLogprobs = [[String: PromptLogprobEntry]?]

extension CompletionLogprobs {
    /// Appends `other`'s tokens after these (the echoed prompt's, then the generated ones').
    public mutating func append(_ other: CompletionLogprobs) {
        textOffset += other.textOffset; tokenLogprobs += other.tokenLogprobs
        tokens += other.tokens; topLogprobs += other.topLogprobs
    }
}
