/// The body of `POST /v1/chat/completions`, with vLLM's extra fields (`chat_template_kwargs`,
/// `add_generation_prompt`, `continue_final_message`, sampling extras).
public struct ChatCompletionRequest: Sendable, Codable, SamplingFields, OpenAIRequestBody {
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
    /// vLLM: documents handed to the chat template as its `documents` variable (for RAG templates).
    public var documents: [JSONValue]?
    public var tools: [JSONValue]?
    /// "none", "auto", "required" or a named tool. Only "none" is served (the tools, if any, reach the
    /// template and no call is parsed); the others are rejected until tool parsing exists.
    public var toolChoice: JSONValue?
    /// OpenAI: an end-user id for abuse monitoring. Pure metadata, accepted and not used.
    public var user: String?
    /// Token id (as a string) → bias in [-100, 100], added to the logits before sampling.
    public var logitBias: [String: Double]?
    /// vLLM: the logprobs of the prompt tokens with this many alternatives (0...20; see `SamplingParams.maxPromptLogprobEntries`).
    public var promptLogprobs: Int?
    /// vLLM: keep only the last k prompt tokens (-1: the last max_model_len).
    public var truncatePromptTokens: Int?
    /// vLLM: the id the response carries (`chatcmpl-<request_id>`); random when absent.
    public var requestId: String?
    /// vLLM: the data-parallel rank that must serve the request (internal load balancing).
    public var dataParallelRank: Int?
    /// vLLM: false leaves `reasoning_content` out of the answer (streamed and not) when the server
    /// has a `--reasoning-parser`; the content is unchanged. Default true.
    public var includeReasoning: Bool?

    public init(model: String? = nil, messages: [JSONValue]) { self.model = model; self.messages = messages }

    public static let declaredFields = Set(CodingKeys.allCases.map(\.rawValue))

    enum CodingKeys: String, CodingKey, CaseIterable {
        case model, messages, logprobs, n, temperature, seed, stop, stream, tools, user, documents
        case topLogprobs = "top_logprobs", maxTokens = "max_tokens", maxCompletionTokens = "max_completion_tokens"
        case topP = "top_p", topK = "top_k", minP = "min_p"
        case presencePenalty = "presence_penalty", frequencyPenalty = "frequency_penalty"
        case repetitionPenalty = "repetition_penalty", minTokens = "min_tokens", ignoreEos = "ignore_eos"
        case stopTokenIds = "stop_token_ids", includeStopStrInOutput = "include_stop_str_in_output"
        case skipSpecialTokens = "skip_special_tokens", streamOptions = "stream_options"
        case addGenerationPrompt = "add_generation_prompt", continueFinalMessage = "continue_final_message"
        case addSpecialTokens = "add_special_tokens", chatTemplate = "chat_template"
        case chatTemplateKwargs = "chat_template_kwargs", logitBias = "logit_bias", toolChoice = "tool_choice"
        case promptLogprobs = "prompt_logprobs", truncatePromptTokens = "truncate_prompt_tokens", requestId = "request_id"
        case dataParallelRank = "data_parallel_rank", includeReasoning = "include_reasoning"
    }
}
