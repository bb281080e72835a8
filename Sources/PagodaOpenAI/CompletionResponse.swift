/// Token counts of a request (`usage`).
public struct UsageInfo: Sendable, Codable, Equatable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int
    public var promptTokensDetails: PromptTokensDetails?
    public init(promptTokens: Int, completionTokens: Int, cachedTokens: Int? = nil) {
        self.promptTokens = promptTokens; self.completionTokens = completionTokens
        self.totalTokens = promptTokens + completionTokens
        self.promptTokensDetails = cachedTokens.map { PromptTokensDetails(cachedTokens: $0) }
    }
    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens", completionTokens = "completion_tokens", totalTokens = "total_tokens"
        case promptTokensDetails = "prompt_tokens_details"
    }
}

public struct PromptTokensDetails: Sendable, Codable, Equatable {
    public var cachedTokens: Int
    enum CodingKeys: String, CodingKey { case cachedTokens = "cached_tokens" }
}

/// Legacy-completions logprobs: parallel arrays, one entry per token.
public struct CompletionLogprobs: Sendable, Codable, Equatable {
    public var textOffset: [Int] = []
    /// nil for the first prompt token when the prompt is echoed.
    public var tokenLogprobs: [Double?] = []
    public var tokens: [String] = []
    public var topLogprobs: [[String: Double]?] = []
    public init() {}
    enum CodingKeys: String, CodingKey {
        case textOffset = "text_offset", tokenLogprobs = "token_logprobs", tokens, topLogprobs = "top_logprobs"
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(textOffset, forKey: .textOffset)
        try c.encode(tokenLogprobs, forKey: .tokenLogprobs)
        try c.encode(tokens, forKey: .tokens)
        try c.encode(topLogprobs, forKey: .topLogprobs)
    }
}

/// One choice of a completion (whole, or one streamed chunk of it).
public struct CompletionChoice: Sendable, Codable, Equatable {
    public var index: Int
    public var text: String
    public var logprobs: CompletionLogprobs?
    /// "stop", "length", "abort"; nil while streaming.
    public var finishReason: String?
    /// vLLM: the stop string or stop token id that ended the choice.
    public var stopReason: StopReason?
    /// vLLM: the prompt's logprobs when the request set `prompt_logprobs`.
    public var promptLogprobs: PromptLogprobs?
    public init(
        index: Int, text: String, logprobs: CompletionLogprobs? = nil, finishReason: String? = nil, stopReason: StopReason? = nil,
        promptLogprobs: PromptLogprobs? = nil
    ) {
        self.index = index; self.text = text; self.logprobs = logprobs; self.finishReason = finishReason; self.stopReason = stopReason
        self.promptLogprobs = promptLogprobs
    }
    enum CodingKeys: String, CodingKey {
        case index, text, logprobs, finishReason = "finish_reason", stopReason = "stop_reason", promptLogprobs = "prompt_logprobs"
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(index, forKey: .index)
        try c.encode(text, forKey: .text)
        try c.encode(logprobs, forKey: .logprobs)  // explicit null, as OpenAI and vLLM send it
        try c.encode(finishReason, forKey: .finishReason)
        try c.encode(stopReason, forKey: .stopReason)
        try c.encodeIfPresent(promptLogprobs, forKey: .promptLogprobs)
    }
}

/// vLLM's `stop_reason`: the stop string (text) or the stop token id that ended a choice.
public enum StopReason: Sendable, Codable, Equatable {
    case text(String)
    case token(Int)
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let i = try? c.decode(Int.self) { self = .token(i) } else { self = .text(try c.decode(String.self)) }
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .text(let s): try c.encode(s)
        case .token(let i): try c.encode(i)
        }
    }
}

/// `POST /v1/completions` answer, and (with `object` "text_completion") each streamed chunk.
public struct CompletionResponse: Sendable, Codable, Equatable {
    public var id: String
    public var object: String = "text_completion"
    public var created: Int
    public var model: String
    public var choices: [CompletionChoice]
    public var usage: UsageInfo?
    /// vLLM's `kv_transfer_params`: where a decode server reads this request's KV (prefill servers only).
    public var kvTransferParams: JSONValue?
    public init(id: String, created: Int, model: String, choices: [CompletionChoice], usage: UsageInfo?,
                kvTransferParams: JSONValue? = nil) {
        self.id = id; self.created = created; self.model = model; self.choices = choices; self.usage = usage
        self.kvTransferParams = kvTransferParams
    }
    enum CodingKeys: String, CodingKey {
        case id, object, created, model, choices, usage, kvTransferParams = "kv_transfer_params"
    }
}
