import PagodaStructured

/// The one check of sampling parameters (vLLM's `SamplingParams._verify_args` plus the engine's
/// vocabulary checks). The API server calls it while building a request, so a bad value is a 400
/// naming the parameter before anything reaches the engine; `EngineCore.addRequest` calls it again
/// through `RequestValidator` for callers that skip the server (`LLM.generate`, RPC peers).
extension SamplingParams {
    /// The largest `logprobs` (and OpenAI `top_logprobs`) a request may ask for unless `--max-logprobs` says
    /// otherwise (vLLM's default).
    public static let maxLogprobs = 20
    /// The most prompt-logprob entries one request may ask for: (prompt tokens − 1) × (prompt_logprobs + 1),
    /// each scored prompt token with its alternatives, which the engine holds until the first output and
    /// the response carries (about 70 MB of JSON at the limit). A full 32k context fits with 20 alternatives.
    public static let maxPromptLogprobEntries = 1 << 20
    /// OpenAI's range of one `logit_bias` value.
    public static let logitBiasRange: ClosedRange<Float> = -100...100

    /// Throws `EngineError.invalidRequest` naming the first bad parameter (OpenAI's wire name).
    /// `vocabSize` bounds the token ids in `stopTokenIds` and `logitBias`; `maxLogprobs` (`--max-logprobs`,
    /// resolved) bounds `logprobs` and `promptLogprobs`.
    public func validate(vocabSize: Int, maxLogprobs: Int = SamplingParams.maxLogprobs) throws {
        func bad(_ name: String, _ reason: String) -> EngineError { .invalidRequest(parameter: name, reason: reason) }
        if !(temperature >= 0) || !temperature.isFinite { throw bad("temperature", "must be >= 0, got \(temperature)") }
        if !(topP > 0 && topP <= 1) { throw bad("top_p", "must be in (0, 1], got \(topP)") }
        if topK < -1 { throw bad("top_k", "must be -1 (disable), 0 or positive, got \(topK)") }
        if !(minP >= 0 && minP <= 1) { throw bad("min_p", "must be in [0, 1], got \(minP)") }
        if !(presencePenalty >= -2 && presencePenalty <= 2) {
            throw bad("presence_penalty", "must be in [-2, 2], got \(presencePenalty)")
        }
        if !(frequencyPenalty >= -2 && frequencyPenalty <= 2) {
            throw bad("frequency_penalty", "must be in [-2, 2], got \(frequencyPenalty)")
        }
        if !(repetitionPenalty > 0) || !repetitionPenalty.isFinite {
            throw bad("repetition_penalty", "must be > 0, got \(repetitionPenalty)")
        }
        if maxTokens < 1 { throw bad("max_tokens", "must be at least 1, got \(maxTokens)") }
        if minTokens < 0 || minTokens > maxTokens {
            throw bad("min_tokens", "must be in 0...max_tokens (\(maxTokens)), got \(minTokens)")
        }
        if let t = stopTokenIds.first(where: { $0 < 0 || $0 >= vocabSize }) {
            throw bad("stop_token_ids", "contains \(t), outside the vocabulary (0..<\(vocabSize))")
        }
        if let n = logprobs, n < 0 || n > maxLogprobs { throw bad("logprobs", "must be in 0...\(maxLogprobs) (--max-logprobs), got \(n)") }
        if let n = promptLogprobs, n < 0 || n > maxLogprobs {
            throw bad("prompt_logprobs", "must be in 0...\(maxLogprobs) (--max-logprobs), got \(n)")
        }
        try validateLogitBias(vocabSize: vocabSize)
        if let spec = structuredOutputs {
            do { _ = try spec.compileGrammar() } catch { throw bad("structured_outputs", "\(error)") }
        }
    }

    /// The bound on what `promptLogprobs` makes the engine hold for a prompt of `promptLength` tokens.
    public func validatePromptLogprobs(promptLength: Int) throws {
        guard let k = promptLogprobs, k >= 0 else { return }
        let entries = max(0, promptLength - 1).multipliedReportingOverflow(by: k + 1)
        if entries.overflow || entries.partialValue > Self.maxPromptLogprobEntries {
            throw EngineError.invalidRequest(
                parameter: "prompt_logprobs",
                reason:
                    "a prompt of \(promptLength) tokens with \(k) alternatives would hold \(entries.overflow ? "too many" : "\(entries.partialValue)") entries, "
                    + "more than the limit of \(Self.maxPromptLogprobEntries) ((prompt tokens - 1) x (prompt_logprobs + 1)); "
                    + "ask for fewer alternatives or a shorter prompt")
        }
    }

    private func validateLogitBias(vocabSize: Int) throws {
        func bad(_ reason: String) -> EngineError { .invalidRequest(parameter: "logit_bias", reason: reason) }
        var seen = Set<Int>(minimumCapacity: logitBias.count)  // a set: a request may send thousands of entries
        for b in logitBias {
            if b.tokenId < 0 || b.tokenId >= vocabSize {
                throw bad("token id \(b.tokenId) is outside the vocabulary (0..<\(vocabSize))")
            }
            if !Self.logitBiasRange.contains(b.bias) {
                throw bad("the bias of token \(b.tokenId) must be in [-100, 100], got \(b.bias)")
            }
            if !seen.insert(b.tokenId).inserted {
                throw bad("token id \(b.tokenId) appears more than once")
            }
        }
    }
}
