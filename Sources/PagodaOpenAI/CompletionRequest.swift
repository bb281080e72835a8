/// The body of `POST /v1/completions` (OpenAI's legacy completions, with vLLM's extra fields).
public struct CompletionRequest: Sendable, Codable, SamplingFields {
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
    public var user: String?
    public var logitBias: [String: Double]?

    public init(model: String? = nil, prompt: PromptInput? = nil) { self.model = model; self.prompt = prompt }

    enum CodingKeys: String, CodingKey {
        case model, prompt, echo, logprobs, n, temperature, seed, stop, stream, suffix, user
        case maxTokens = "max_tokens", bestOf = "best_of", topP = "top_p", topK = "top_k", minP = "min_p"
        case presencePenalty = "presence_penalty", frequencyPenalty = "frequency_penalty"
        case repetitionPenalty = "repetition_penalty", minTokens = "min_tokens", ignoreEos = "ignore_eos"
        case stopTokenIds = "stop_token_ids", includeStopStrInOutput = "include_stop_str_in_output"
        case skipSpecialTokens = "skip_special_tokens", addSpecialTokens = "add_special_tokens"
        case streamOptions = "stream_options", logitBias = "logit_bias"
    }
}
