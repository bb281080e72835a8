/// One alternative token and its logprob in chat logprobs.
public struct ChatTopLogprob: Sendable, Codable, Equatable {
    public var token: String
    public var logprob: Double
    public var bytes: [UInt8]?
    public init(token: String, logprob: Double, bytes: [UInt8]?) { self.token = token; self.logprob = logprob; self.bytes = bytes }
}

/// The logprob of one generated token with its top alternatives (chat format).
public struct ChatTokenLogprob: Sendable, Codable, Equatable {
    public var token: String
    public var logprob: Double
    public var bytes: [UInt8]?
    public var topLogprobs: [ChatTopLogprob]
    public init(token: String, logprob: Double, bytes: [UInt8]?, topLogprobs: [ChatTopLogprob]) {
        self.token = token; self.logprob = logprob; self.bytes = bytes; self.topLogprobs = topLogprobs
    }
    enum CodingKeys: String, CodingKey { case token, logprob, bytes, topLogprobs = "top_logprobs" }
}

public struct ChatLogprobs: Sendable, Codable, Equatable {
    public var content: [ChatTokenLogprob]
    public init(content: [ChatTokenLogprob]) { self.content = content }
}

/// The assistant message of a whole chat answer, or the delta of a streamed chunk.
public struct ChatMessage: Sendable, Codable, Equatable {
    public var role: String?
    public var content: String?
    /// vLLM: the model's reasoning (`<think>…</think>`) when the server runs a `--reasoning-parser`.
    public var reasoningContent: String?
    /// The tool calls of the answer (omitted when none).
    public var toolCalls: [ChatToolCall]?
    public init(role: String?, content: String?, reasoningContent: String? = nil, toolCalls: [ChatToolCall]? = nil) {
        self.role = role; self.content = content; self.reasoningContent = reasoningContent; self.toolCalls = toolCalls
    }
    enum CodingKeys: String, CodingKey { case role, content, reasoningContent = "reasoning_content", toolCalls = "tool_calls" }
}

/// One choice of a chat completion: `message` when whole, `delta` when streamed.
public struct ChatChoice: Sendable, Codable, Equatable {
    public var index: Int
    public var message: ChatMessage?
    public var delta: ChatMessage?
    public var logprobs: ChatLogprobs?
    public var finishReason: String?
    public var stopReason: StopReason?
    public init(
        index: Int, message: ChatMessage? = nil, delta: ChatMessage? = nil, logprobs: ChatLogprobs? = nil,
        finishReason: String? = nil, stopReason: StopReason? = nil
    ) {
        self.index = index; self.message = message; self.delta = delta; self.logprobs = logprobs
        self.finishReason = finishReason; self.stopReason = stopReason
    }
    enum CodingKeys: String, CodingKey {
        case index, message, delta, logprobs, finishReason = "finish_reason", stopReason = "stop_reason"
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(index, forKey: .index)
        try c.encodeIfPresent(message, forKey: .message)
        try c.encodeIfPresent(delta, forKey: .delta)
        try c.encode(logprobs, forKey: .logprobs)
        try c.encode(finishReason, forKey: .finishReason)
        try c.encode(stopReason, forKey: .stopReason)
    }
}

/// `POST /v1/chat/completions` answer (`object` "chat.completion") or a streamed chunk
/// (`object` "chat.completion.chunk").
public struct ChatCompletionResponse: Sendable, Codable, Equatable {
    public var id: String
    public var object: String
    public var created: Int
    public var model: String
    public var choices: [ChatChoice]
    public var usage: UsageInfo?
    /// vLLM: the prompt's logprobs when the request set `prompt_logprobs` (whole responses only).
    public var promptLogprobs: PromptLogprobs?
    /// vLLM's `kv_transfer_params`: where a decode server reads this request's KV (prefill servers only).
    public var kvTransferParams: JSONValue?
    public init(
        id: String, object: String = "chat.completion", created: Int, model: String, choices: [ChatChoice], usage: UsageInfo?,
        promptLogprobs: PromptLogprobs? = nil, kvTransferParams: JSONValue? = nil
    ) {
        self.id = id; self.object = object; self.created = created; self.model = model; self.choices = choices; self.usage = usage
        self.promptLogprobs = promptLogprobs; self.kvTransferParams = kvTransferParams
    }
    enum CodingKeys: String, CodingKey {
        case id, object, created, model, choices, usage, promptLogprobs = "prompt_logprobs", kvTransferParams = "kv_transfer_params"
    }
}
