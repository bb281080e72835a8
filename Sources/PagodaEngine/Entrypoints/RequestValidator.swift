/// Checks one request before it enters the engine; every error names the parameter.
public enum RequestValidator {
    public static func validate(_ r: EngineRequest, vocabSize: Int, maxModelLen: Int) throws {
        let p = r.sampling
        func bad(_ name: String, _ reason: String) -> EngineError { .invalidRequest(parameter: name, reason: reason) }
        if r.promptTokenIds.isEmpty { throw bad("prompt", "the prompt is empty") }
        if r.promptTokenIds.count >= maxModelLen {
            throw EngineError.promptTooLong(numTokens: r.promptTokenIds.count, maxModelLen: maxModelLen)
        }
        if let t = r.promptTokenIds.first(where: { $0 < 0 || $0 >= vocabSize }) {
            throw bad("prompt", "token id \(t) is out of the vocabulary (0..<\(vocabSize))")
        }
        if !(p.temperature >= 0) || !p.temperature.isFinite { throw bad("temperature", "must be >= 0, got \(p.temperature)") }
        if !(p.topP > 0 && p.topP <= 1) { throw bad("top_p", "must be in (0, 1], got \(p.topP)") }
        if p.topK < -1 { throw bad("top_k", "must be -1 (disable), 0 or positive, got \(p.topK)") }
        if !(p.minP >= 0 && p.minP <= 1) { throw bad("min_p", "must be in [0, 1], got \(p.minP)") }
        if !(p.presencePenalty >= -2 && p.presencePenalty <= 2) {
            throw bad("presence_penalty", "must be in [-2, 2], got \(p.presencePenalty)")
        }
        if !(p.frequencyPenalty >= -2 && p.frequencyPenalty <= 2) {
            throw bad("frequency_penalty", "must be in [-2, 2], got \(p.frequencyPenalty)")
        }
        if !(p.repetitionPenalty > 0) || !p.repetitionPenalty.isFinite {
            throw bad("repetition_penalty", "must be > 0, got \(p.repetitionPenalty)")
        }
        if p.maxTokens < 1 { throw bad("max_tokens", "must be at least 1, got \(p.maxTokens)") }
        if p.minTokens < 0 || p.minTokens > p.maxTokens {
            throw bad("min_tokens", "must be in 0...max_tokens (\(p.maxTokens)), got \(p.minTokens)")
        }
        if let n = p.logprobs, n < 0 || n > 20 { throw bad("logprobs", "must be in 0...20, got \(n)") }
        if p.promptLogprobs != nil { throw bad("prompt_logprobs", "is not supported yet") }
        if r.requestId.isEmpty { throw bad("request_id", "is empty") }
    }
}
