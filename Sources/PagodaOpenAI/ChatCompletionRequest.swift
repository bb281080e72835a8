/// The body of `POST /v1/chat/completions`, with vLLM's extra fields (`chat_template_kwargs`,
/// `add_generation_prompt`, `continue_final_message`, sampling extras).
public struct ChatCompletionRequest: Sendable, Codable, SamplingFields {
    public var model: String?
    /// Each message as sent: `{"role": ..., "content": string | [{"type":"text","text":...}], ...}`.
    /// Kept as JSON so every field reaches the chat template.
    public var messages: [JSONValue]
    public var logprobs: Bool?
    /// Top alternatives per token (0...20) when `logprobs` is true.
    public var topLogprobs: Int?
    public var maxTokens: Int?
    public var maxCompletionTokens: Int?
    public var n: Int?
    public var temperature: Double?
    public var topP: Double?
    public var topK: Int?
    public var minP: Double?
    public var seed: Int?
    public var presencePenalty: Double?
    public var frequencyPenalty: Double?
    public var repetitionPenalty: Double?
    public var minTokens: Int?
    public var ignoreEos: Bool?
    public var stop: StopSequences?
    public var stopTokenIds: [Int]?
    public var includeStopStrInOutput: Bool?
    public var skipSpecialTokens: Bool?
    public var stream: Bool?
    public var streamOptions: StreamOptions?
    public var addGenerationPrompt: Bool?
    public var continueFinalMessage: Bool?
    public var addSpecialTokens: Bool?
    public var chatTemplate: String?
    public var chatTemplateKwargs: [String: JSONValue]?
    public var tools: [JSONValue]?
    public var user: String?
    public var logitBias: [String: Double]?

    public init(model: String? = nil, messages: [JSONValue]) { self.model = model; self.messages = messages }

    enum CodingKeys: String, CodingKey {
        case model, messages, logprobs, n, temperature, seed, stop, stream, tools, user
        case topLogprobs = "top_logprobs", maxTokens = "max_tokens", maxCompletionTokens = "max_completion_tokens"
        case topP = "top_p", topK = "top_k", minP = "min_p"
        case presencePenalty = "presence_penalty", frequencyPenalty = "frequency_penalty"
        case repetitionPenalty = "repetition_penalty", minTokens = "min_tokens", ignoreEos = "ignore_eos"
        case stopTokenIds = "stop_token_ids", includeStopStrInOutput = "include_stop_str_in_output"
        case skipSpecialTokens = "skip_special_tokens", streamOptions = "stream_options"
        case addGenerationPrompt = "add_generation_prompt", continueFinalMessage = "continue_final_message"
        case addSpecialTokens = "add_special_tokens", chatTemplate = "chat_template"
        case chatTemplateKwargs = "chat_template_kwargs", logitBias = "logit_bias"
    }
}
