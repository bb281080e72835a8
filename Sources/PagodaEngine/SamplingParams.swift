import PagodaStructured

/// How one request's tokens are chosen and when it stops (vLLM's `SamplingParams`).
///
/// Stop *strings* are not here: they are text, so the front-end (which detokenizes) checks them
/// and aborts the request. `n` > 1 is fanned out by the front-end into n requests.
public struct SamplingParams: Sendable, Codable, Equatable {
    /// 0 means greedy.
    public var temperature: Float = 1.0
    public var topP: Float = 1.0
    /// 0 or -1 means no top-k.
    public var topK: Int = 0
    public var minP: Float = 0
    /// A seeded request gives the same tokens whatever else shares its batch.
    public var seed: UInt64? = nil
    public var presencePenalty: Float = 0
    public var frequencyPenalty: Float = 0
    public var repetitionPenalty: Float = 1.0
    public var maxTokens: Int = 16
    public var minTokens: Int = 0
    public var ignoreEOS: Bool = false
    public var stopTokenIds: [Int] = []
    /// Number of top logprobs to return per generated token (nil: none; 0: only the chosen token's).
    public var logprobs: Int? = nil
    /// Logprobs of the prompt tokens (nil: none).
    public var promptLogprobs: Int? = nil
    /// Added to the logits before any penalty or sampling step (OpenAI's `logit_bias`), so it also
    /// steers greedy decoding. Empty for most requests, which then pay nothing for it.
    public var logitBias: [LogitBias] = []
    /// The grammar the output must match (vLLM's `structured_outputs`); nil: free text.
    public var structuredOutputs: StructuredOutputSpec? = nil

    public init() {}
    public static var greedy: SamplingParams { var p = SamplingParams(); p.temperature = 0; return p }
}

/// One entry of `SamplingParams.logitBias`: `bias` (in -100...100, OpenAI's range) is added to
/// the logit of `tokenId`. A list rather than a dictionary so the sampler walks it without hashing
/// and the RPC encoding is stable.
public struct LogitBias: Sendable, Codable, Equatable {
    public var tokenId: Int
    public var bias: Float
    public init(tokenId: Int, bias: Float) { self.tokenId = tokenId; self.bias = bias }
}
