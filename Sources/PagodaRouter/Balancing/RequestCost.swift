/// The load a request puts on a backend, in tokens: prompt tokens plus expected output.
///
/// vllm-ascend's rule: `prompt + max_tokens` when `ignore_eos` (the request will run to `max_tokens`),
/// else `prompt + 0.5 * max_tokens` (it may stop early at EOS). A missing `max_tokens` counts as 16
/// (vLLM's completions default). Without a tokenizer the prompt length is estimated as one token per
/// four UTF-8 bytes (English BPE averages ~4 bytes/token); token-id prompts count exactly.
public struct RequestCost: Sendable {
    public static let defaultMaxTokens = 16
    /// Weight of `max_tokens` when the request may stop at EOS.
    public var outputWeight: Double = 0.5
    /// Counts prompt tokens; nil estimates from bytes.
    public var countTokens: (@Sendable (String) -> Int)?

    public init(outputWeight: Double = 0.5, countTokens: (@Sendable (String) -> Int)? = nil) {
        self.outputWeight = outputWeight
        self.countTokens = countTokens
    }

    public func promptTokens(_ summary: RequestSummary) -> Int {
        if let ids = summary.promptTokenIds { return ids.count }
        if let countTokens { return countTokens(summary.promptText) }
        return Self.estimateTokens(summary.promptText)
    }

    /// Cost of one request: prompt tokens + weighted expected output tokens.
    public func cost(_ summary: RequestSummary) -> Double {
        let output = Double(max(0, summary.maxTokens ?? Self.defaultMaxTokens))
        return Double(promptTokens(summary)) + (summary.ignoreEOS ? 1.0 : outputWeight) * output
    }

    /// ceil(utf8 bytes / 4).
    public static func estimateTokens(_ text: String) -> Int {
        (text.utf8.count + 3) / 4
    }
}
