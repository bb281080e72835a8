/// Checks one request before it enters the engine; every error names the parameter. The sampling
/// parameters are checked by `SamplingParams.validate`, the one place that knows their ranges.
public enum RequestValidator {
    public static func validate(
        _ r: EngineRequest, vocabSize: Int, maxModelLen: Int, maxLogprobs: Int = SamplingParams.maxLogprobs
    ) throws {
        let p = r.sampling
        func bad(_ name: String, _ reason: String) -> EngineError { .invalidRequest(parameter: name, reason: reason) }
        if r.promptTokenIds.isEmpty { throw bad("prompt", "the prompt is empty") }
        if r.promptTokenIds.count >= maxModelLen {
            throw EngineError.promptTooLong(numTokens: r.promptTokenIds.count, maxModelLen: maxModelLen)
        }
        if let t = r.promptTokenIds.first(where: { $0 < 0 || $0 >= vocabSize }) {
            throw bad("prompt", "token id \(t) is out of the vocabulary (0..<\(vocabSize))")
        }
        try p.validatePromptLogprobs(promptLength: r.promptTokenIds.count)
        try p.validate(vocabSize: vocabSize, maxLogprobs: maxLogprobs)
        if r.requestId.isEmpty { throw bad("request_id", "is empty") }
    }
}
