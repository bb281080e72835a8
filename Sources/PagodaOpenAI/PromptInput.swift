/// The `prompt` of a completion request: a string, a list of strings, a list of token ids, or a
/// list of token-id lists (OpenAI accepts all four; each list entry is a separate prompt).
public enum PromptInput: Sendable, Equatable, Codable {
    case text(String)
    case texts([String])
    case tokens([Int])
    case tokenLists([[Int]])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) { self = .text(s); return }
        if let a = try? c.decode([String].self) { self = .texts(a); return }
        if let t = try? c.decode([Int].self) { self = .tokens(t); return }
        if let l = try? c.decode([[Int]].self) { self = .tokenLists(l); return }
        throw DecodingError.typeMismatch(
            PromptInput.self,
            .init(codingPath: decoder.codingPath,
                  debugDescription: "prompt must be a string, a list of strings, a list of token ids or a list of token-id lists"))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .text(let s): try c.encode(s)
        case .texts(let a): try c.encode(a)
        case .tokens(let t): try c.encode(t)
        case .tokenLists(let l): try c.encode(l)
        }
    }

    /// Number of separate prompts.
    public var count: Int {
        switch self {
        case .text, .tokens: return 1
        case .texts(let a): return a.count
        case .tokenLists(let l): return l.count
        }
    }
}

/// `stop`: one string or a list of strings.
public struct StopSequences: Sendable, Equatable, Codable {
    public var values: [String]
    public init(_ values: [String]) { self.values = values }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { values = []; return }
        if let s = try? c.decode(String.self) { values = [s]; return }
        values = try c.decode([String].self)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(values)
    }
}

/// `stream_options` of a streamed request.
public struct StreamOptions: Sendable, Equatable, Codable {
    /// Send a last chunk with the usage of the whole request (and `choices: []`).
    public var includeUsage: Bool?
    /// vLLM: usage on every chunk.
    public var continuousUsageStats: Bool?
    public init(includeUsage: Bool? = nil, continuousUsageStats: Bool? = nil) {
        self.includeUsage = includeUsage; self.continuousUsageStats = continuousUsageStats
    }
    enum CodingKeys: String, CodingKey {
        case includeUsage = "include_usage", continuousUsageStats = "continuous_usage_stats"
    }
}
