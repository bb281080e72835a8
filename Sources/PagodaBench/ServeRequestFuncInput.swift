/// The OpenAI-compatible APIs `--backend` chooses between.
public enum ServeBackend: String, CaseIterable, Sendable {
    /// `/v1/completions`: the prompt is sent as text, `max_tokens` bounds the output.
    case openai
    /// `/v1/chat/completions`: the prompt is one user message, `max_completion_tokens` bounds the output.
    case openaiChat = "openai-chat"

    /// The endpoint used when `--endpoint` is not given.
    public var defaultEndpoint: String {
        switch self {
        case .openai: return "/v1/completions"
        case .openaiChat: return "/v1/chat/completions"
        }
    }
}

/// Everything one benchmark request sends (vLLM's `RequestFuncInput`).
public struct RequestFuncInput: @unchecked Sendable {
    public var prompt: String
    public var apiURL: String
    public var promptLen: Int
    public var outputLen: Int
    /// `model` in the request body: the served model name when given, else the model id.
    public var model: String
    public var ignoreEOS: Bool
    /// Extra body fields (sampling parameters, `--extra-body`), merged over the defaults.
    public var extraBody: [String: Any]
    public var requestId: String

    public init(
        prompt: String, apiURL: String, promptLen: Int, outputLen: Int, model: String, ignoreEOS: Bool = false,
        extraBody: [String: Any] = [:], requestId: String = ""
    ) {
        self.prompt = prompt
        self.apiURL = apiURL
        self.promptLen = promptLen
        self.outputLen = outputLen
        self.model = model
        self.ignoreEOS = ignoreEOS
        self.extraBody = extraBody
        self.requestId = requestId
    }
}

/// What one benchmark request measured (vLLM's `RequestFuncOutput`). Times are seconds.
public struct RequestFuncOutput: Sendable {
    public var generatedText = ""
    public var success = false
    /// Send to last token chunk.
    public var latency = 0.0
    /// `usage.completion_tokens` from the server's final stream chunk, when it sent one.
    public var outputTokens: Int?
    /// Time to first token chunk.
    public var ttft = 0.0
    /// Gaps between successive token chunks.
    public var itl: [Double] = []
    /// The dataset's count, replaced by `usage.prompt_tokens` when the server reports it.
    public var promptLen = 0
    /// Empty on success; otherwise the failure, never dropped.
    public var error = ""
    /// When the request was sent, on the benchmark's monotonic clock.
    public var startTime = 0.0
    /// Time spent waiting for a `--max-concurrency` slot.
    public var clientQueueTime = 0.0

    public init() {}
}
