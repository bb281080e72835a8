import PagodaEngine
import PagodaOpenAI

/// The engine's sampling parameters for one request body. Ranges are checked by the engine's one
/// validator (`SamplingParams.validate`), called by `fit` once `max_tokens` is final; its errors
/// become 400s naming the parameter. Only what `SamplingParams` cannot hold is checked here: `n`
/// (the front-end fans it out), the shape of `logit_bias`, and the context length.
struct RequestSampling {
    var params: SamplingParams
    var n: Int
    var stops: [String]
    var includeStopStrInOutput: Bool
    var skipSpecialTokens: Bool
    /// The request gave `max_tokens` (else it is filled from the context left).
    var maxTokensGiven: Bool
    /// The endpoint's wire name for `SamplingParams.logprobs` (`top_logprobs` in chat).
    var logprobsParam: String
    let vocabSize: Int
    /// `--max-logprobs` as the engine reported it (resolved).
    let maxLogprobs: Int

    static let maxN = 128

    static func from(
        _ r: some SamplingFields, logprobs: Int?, logprobsParam: String = "logprobs", vocabSize: Int, maxLogprobs: Int
    ) throws -> RequestSampling
    {
        let n = r.n ?? 1
        if n < 1 || n > maxN { throw OpenAIError.badRequest("n must be between 1 and \(maxN), got \(n)", param: "n") }
        var p = SamplingParams()
        if let t = r.temperature { p.temperature = Float(t) }
        if let v = r.topP { p.topP = Float(v) }
        if let k = r.topK { p.topK = k == -1 ? 0 : k }
        if let v = r.minP { p.minP = Float(v) }
        if let s = r.seed { p.seed = UInt64(bitPattern: Int64(s)) }
        if let v = r.presencePenalty { p.presencePenalty = Float(v) }
        if let v = r.frequencyPenalty { p.frequencyPenalty = Float(v) }
        if let v = r.repetitionPenalty { p.repetitionPenalty = Float(v) }
        if let m = r.maxTokens { p.maxTokens = m }
        if let m = r.minTokens { p.minTokens = m }
        p.ignoreEOS = r.ignoreEos ?? false
        if let ids = r.stopTokenIds { p.stopTokenIds = ids }
        p.logprobs = logprobs
        p.promptLogprobs = r.promptLogprobs
        if let bias = r.logitBias { p.logitBias = try logitBias(bias) }
        return RequestSampling(
            params: p, n: n, stops: r.stop?.values ?? [], includeStopStrInOutput: r.includeStopStrInOutput ?? false,
            skipSpecialTokens: r.skipSpecialTokens ?? true, maxTokensGiven: r.maxTokens != nil,
            logprobsParam: logprobsParam, vocabSize: vocabSize, maxLogprobs: maxLogprobs)
    }

    /// OpenAI's `logit_bias` (token id as a string → bias) as the engine's list, in token order.
    /// Ranges and ids are the validator's business; only the keys' form is checked here.
    static func logitBias(_ bias: [String: Double]) throws -> [LogitBias] {
        var out: [LogitBias] = []
        out.reserveCapacity(bias.count)
        for (key, value) in bias {
            guard let id = Int(key) else {
                throw OpenAIError.badRequest("logit_bias keys must be token ids, got '\(key)'", param: "logit_bias")
            }
            out.append(LogitBias(tokenId: id, bias: Float(value)))
        }
        return out.sorted { $0.tokenId < $1.tokenId }
    }

    /// Fills `max_tokens` from the context left when absent, rejects prompts that do not fit
    /// (vLLM's message), then validates the final parameters. `defaultMaxTokens` nil: the whole
    /// remaining context.
    mutating func fit(promptLength: Int, maxModelLen: Int, defaultMaxTokens: Int?) throws {
        if promptLength == 0 {
            throw OpenAIError.badRequest("The prompt cannot be empty.", param: "prompt")
        }
        // Before the context check: the bound needs no model, and a prompt beyond it may be beyond the context too.
        do {
            try params.validatePromptLogprobs(promptLength: promptLength)
        } catch EngineError.invalidRequest(let parameter, let reason) {
            throw OpenAIError.badRequest("invalid \(parameter): \(reason)", param: parameter)
        }
        if promptLength >= maxModelLen {
            throw OpenAIError.badRequest(
                "This model's maximum context length is \(maxModelLen) tokens. However, your request has \(promptLength) input tokens. Please reduce the length of the input messages.",
                param: "max_tokens")
        }
        if !maxTokensGiven {
            params.maxTokens = min(defaultMaxTokens ?? Int.max, maxModelLen - promptLength)
        }
        // Compared as a difference: `max_tokens` is the client's integer and may be near Int.max.
        if params.maxTokens > maxModelLen - promptLength {
            let total = promptLength.addingReportingOverflow(params.maxTokens)
            throw OpenAIError.badRequest(
                "This model's maximum context length is \(maxModelLen) tokens. However, you requested \(total.overflow ? "more than \(Int.max)" : "\(total.partialValue)") tokens (\(promptLength) in the messages, \(params.maxTokens) in the completion). Please reduce the length of the messages or completion.",
                param: "max_tokens")
        }
        try validate()
    }

    /// `SamplingParams.validate` with its error as a 400 naming the endpoint's parameter.
    func validate() throws {
        do {
            try params.validate(vocabSize: vocabSize, maxLogprobs: maxLogprobs)
        } catch EngineError.invalidRequest(let parameter, let reason) {
            let name = parameter == "logprobs" ? logprobsParam : parameter
            throw OpenAIError.badRequest("invalid \(name): \(reason)", param: name)
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
