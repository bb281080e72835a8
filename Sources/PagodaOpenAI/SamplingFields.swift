/// The sampling fields shared by `/v1/completions` and `/v1/chat/completions`: OpenAI's own and
/// vLLM's extra ones (`top_k`, `min_p`, `repetition_penalty`, ...). All optional: absent means the
/// server's default.
public protocol SamplingFields {
    var maxTokens: Int? { get }
    var n: Int? { get }
    var temperature: Double? { get }
    var topP: Double? { get }
    var topK: Int? { get }
    var minP: Double? { get }
    var seed: Int? { get }
    var presencePenalty: Double? { get }
    var frequencyPenalty: Double? { get }
    var repetitionPenalty: Double? { get }
    var minTokens: Int? { get }
    var ignoreEos: Bool? { get }
    var stop: StopSequences? { get }
    var stopTokenIds: [Int]? { get }
    var includeStopStrInOutput: Bool? { get }
    var skipSpecialTokens: Bool? { get }
    var stream: Bool? { get }
    var streamOptions: StreamOptions? { get }
    var model: String? { get }
    var logitBias: [String: Double]? { get }
    var promptLogprobs: Int? { get }
    var truncatePromptTokens: Int? { get }
    var requestId: String? { get }
    /// vLLM: the data-parallel rank that must serve the request.
    var dataParallelRank: Int? { get }
}
