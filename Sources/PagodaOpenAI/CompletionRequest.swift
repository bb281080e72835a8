/// The body of `POST /v1/completions` (OpenAI's legacy completions, with vLLM's extra fields).
public struct CompletionRequest: Sendable, Codable, SamplingFields, OpenAIRequestBody {
    public var model: String?
    public var prompt: PromptInput?
    public var echo: Bool?
    /// Number of top logprobs per token (0...20); nil: none.
    public var logprobs: Int?
    public var maxTokens: Int?
    public var n: Int?
    public var bestOf: Int?
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
    public var addSpecialTokens: Bool?
    public var stream: Bool?
    public var streamOptions: StreamOptions?
    public var suffix: String?
    /// OpenAI: an end-user id for abuse monitoring. Pure metadata, accepted and not used.
    public var user: String?
    /// Token id (as a string) → bias in [-100, 100], added to the logits before sampling.
    public var logitBias: [String: Double]?
    /// vLLM: prompt logprobs (not supported yet: the engine's validator rejects any value).
    public var promptLogprobs: Int?
    /// vLLM: keep only the last k prompt tokens (-1: the last max_model_len).
    public var truncatePromptTokens: Int?
    /// vLLM: the id the response carries (`cmpl-<request_id>`); random when absent.
    public var requestId: String?
    /// vLLM: the data-parallel rank that must serve the request (internal load balancing).
    public var dataParallelRank: Int?

    public init(model: String? = nil, prompt: PromptInput? = nil) { self.model = model; self.prompt = prompt }

    public static let declaredFields = Set(CodingKeys.allCases.map(\.rawValue))

    enum CodingKeys: String, CodingKey, CaseIterable {
        case model, prompt, echo, logprobs, n, temperature, seed, stop, stream, suffix, user
        case maxTokens = "max_tokens", bestOf = "best_of", topP = "top_p", topK = "top_k", minP = "min_p"
        case presencePenalty = "presence_penalty", frequencyPenalty = "frequency_penalty"
        case repetitionPenalty = "repetition_penalty", minTokens = "min_tokens", ignoreEos = "ignore_eos"
        case stopTokenIds = "stop_token_ids", includeStopStrInOutput = "include_stop_str_in_output"
        case skipSpecialTokens = "skip_special_tokens", addSpecialTokens = "add_special_tokens"
        case streamOptions = "stream_options", logitBias = "logit_bias"
        case promptLogprobs = "prompt_logprobs", truncatePromptTokens = "truncate_prompt_tokens", requestId = "request_id"
        case dataParallelRank = "data_parallel_rank"
    }
}
