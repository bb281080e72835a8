import PagodaEngine
import PagodaOpenAI

/// The engine's sampling parameters for one request body, validated the way vLLM validates them
/// (`vllm/sampling_params.py`): each bad value is a 400 naming its parameter.
struct RequestSampling {
    var params: SamplingParams
    var n: Int
    var stops: [String]
    var includeStopStrInOutput: Bool
    var skipSpecialTokens: Bool
    /// The request gave `max_tokens` (else it is filled from the context left).
    var maxTokensGiven: Bool

    static func from(_ r: some SamplingFields, logprobs: Int?, vocabSize: Int) throws -> RequestSampling {
        var p = SamplingParams()
        func check(_ ok: Bool, _ param: String, _ message: String) throws {
            if !ok { throw OpenAIError.badRequest(message, param: param) }
        }
        let n = r.n ?? 1
        try check(n >= 1 && n <= 128, "n", "n must be between 1 and 128, got \(n)")
        if let t = r.temperature {
            try check(t >= 0 && t.isFinite, "temperature", "temperature must be non-negative, got \(t)")
            p.temperature = Float(t)
        }
        if let v = r.topP {
            try check(v > 0 && v <= 1, "top_p", "top_p must be in (0, 1], got \(v)")
            p.topP = Float(v)
        }
        if let k = r.topK {
            try check(k >= -1, "top_k", "top_k must be -1 (disable), 0 (disable) or at least 1, got \(k)")
            p.topK = k < 0 ? 0 : k
        }
        if let v = r.minP {
            try check(v >= 0 && v <= 1, "min_p", "min_p must be in [0, 1], got \(v)")
            p.minP = Float(v)
        }
        if let s = r.seed {
            p.seed = UInt64(bitPattern: Int64(s))
        }
        if let v = r.presencePenalty {
            try check(v >= -2 && v <= 2, "presence_penalty", "presence_penalty must be in [-2, 2], got \(v)")
            p.presencePenalty = Float(v)
        }
        if let v = r.frequencyPenalty {
            try check(v >= -2 && v <= 2, "frequency_penalty", "frequency_penalty must be in [-2, 2], got \(v)")
            p.frequencyPenalty = Float(v)
        }
        if let v = r.repetitionPenalty {
            try check(v > 0 && v.isFinite, "repetition_penalty", "repetition_penalty must be greater than zero, got \(v)")
            p.repetitionPenalty = Float(v)
        }
        if let m = r.maxTokens {
            try check(m >= 1, "max_tokens", "max_tokens must be at least 1, got \(m)")
            p.maxTokens = m
        }
        if let m = r.minTokens {
            try check(m >= 0, "min_tokens", "min_tokens must be greater than or equal to 0, got \(m)")
            try check(r.maxTokens == nil || m <= r.maxTokens!, "min_tokens",
                      "min_tokens must be less than or equal to max_tokens=\(r.maxTokens ?? 0), got \(m)")
            p.minTokens = m
        }
        p.ignoreEOS = r.ignoreEos ?? false
        if let ids = r.stopTokenIds {
            for id in ids {
                try check(id >= 0 && id < vocabSize, "stop_token_ids", "stop_token_ids contains \(id), outside the vocabulary (0..<\(vocabSize))")
            }
            p.stopTokenIds = ids
        }
        if let lp = logprobs {
            try check(lp >= 0 && lp <= 20, "logprobs", "logprobs must be between 0 and 20, got \(lp)")
            p.logprobs = lp
        }
        return RequestSampling(
            params: p, n: n, stops: r.stop?.values ?? [], includeStopStrInOutput: r.includeStopStrInOutput ?? false,
            skipSpecialTokens: r.skipSpecialTokens ?? true, maxTokensGiven: r.maxTokens != nil)
    }

    /// Fills `max_tokens` from the context left when absent, and rejects prompts that do not fit
    /// (vLLM's message). `defaultMaxTokens` nil: the whole remaining context.
    mutating func fit(promptLength: Int, maxModelLen: Int, defaultMaxTokens: Int?) throws {
        if promptLength == 0 {
            throw OpenAIError.badRequest("The prompt cannot be empty.", param: "prompt")
        }
        if promptLength >= maxModelLen {
            throw OpenAIError.badRequest(
                "This model's maximum context length is \(maxModelLen) tokens. However, your request has \(promptLength) input tokens. Please reduce the length of the input messages.",
                param: "max_tokens")
        }
        if !maxTokensGiven {
            params.maxTokens = min(defaultMaxTokens ?? Int.max, maxModelLen - promptLength)
        }
        if promptLength + params.maxTokens > maxModelLen {
            throw OpenAIError.badRequest(
                "This model's maximum context length is \(maxModelLen) tokens. However, you requested \(promptLength + params.maxTokens) tokens (\(promptLength) in the messages, \(params.maxTokens) in the completion). Please reduce the length of the messages or completion.",
                param: "max_tokens")
        }
    }

    /// The parameters of choice `index` of `n`: a seeded request gives each choice its own seed
    /// (seed + index, as vLLM's ParentRequest does), so the choices differ yet stay reproducible.
    func params(forChoice index: Int) -> SamplingParams {
        var p = params
        if let s = p.seed { p.seed = s &+ UInt64(index) }
        return p
    }
}
