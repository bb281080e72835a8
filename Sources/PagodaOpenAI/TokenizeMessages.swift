/// vLLM's `POST /tokenize` body: either `prompt` or chat `messages` (rendered with the template).
public struct TokenizeRequest: Sendable, Codable, OpenAIRequestBody {
    public var model: String?
    public var prompt: String?
    public var messages: [JSONValue]?
    public var addSpecialTokens: Bool?
    public var addGenerationPrompt: Bool?
    public var continueFinalMessage: Bool?
    public var chatTemplateKwargs: [String: JSONValue]?
    /// vLLM: a template that replaces the model's for this request, as in chat completions.
    public var chatTemplate: String?
    /// vLLM: tools rendered by the chat template, as in chat completions.
    public var tools: [JSONValue]?
    public var returnTokenStrs: Bool?
    public init(model: String? = nil, prompt: String? = nil) { self.model = model; self.prompt = prompt }
    public static let declaredFields = Set(CodingKeys.allCases.map(\.rawValue))
    enum CodingKeys: String, CodingKey, CaseIterable {
        case model, prompt, messages, tools, chatTemplate = "chat_template"
        case addSpecialTokens = "add_special_tokens", addGenerationPrompt = "add_generation_prompt"
        case continueFinalMessage = "continue_final_message", chatTemplateKwargs = "chat_template_kwargs"
        case returnTokenStrs = "return_token_strs"
    }
}

/// `POST /tokenize` answer.
public struct TokenizeResponse: Sendable, Codable, Equatable {
    public var count: Int
    public var maxModelLen: Int
    public var tokens: [Int]
    public var tokenStrs: [String]?
    public init(tokens: [Int], maxModelLen: Int, tokenStrs: [String]?) {
        self.count = tokens.count; self.tokens = tokens; self.maxModelLen = maxModelLen; self.tokenStrs = tokenStrs
    }
    enum CodingKeys: String, CodingKey { case count, tokens, maxModelLen = "max_model_len", tokenStrs = "token_strs" }
}

/// `POST /detokenize` body.
public struct DetokenizeRequest: Sendable, Codable, OpenAIRequestBody {
    public var model: String?
    public var tokens: [Int]
    public init(model: String? = nil, tokens: [Int]) { self.model = model; self.tokens = tokens }
    public static let declaredFields: Set<String> = ["model", "tokens"]
}

/// `POST /detokenize` answer.
public struct DetokenizeResponse: Sendable, Codable, Equatable {
    public var prompt: String
    public init(prompt: String) { self.prompt = prompt }
}

/// `GET /load`: the load a router reads (vLLM's `server_load` plus the scheduler's view).
public struct LoadResponse: Sendable, Codable, Equatable {
    public var serverLoad: Int
    public var numRequestsRunning: Int
    public var numRequestsWaiting: Int
    public var kvCacheUsagePerc: Double
    public var dataParallelRank: Int
    public var dataParallelSize: Int
    /// Data parallel behind this server: every rank (nil with one engine).
    public var engines: [EngineLoad]? = nil
    public init(serverLoad: Int, numRequestsRunning: Int, numRequestsWaiting: Int, kvCacheUsagePerc: Double,
                dataParallelRank: Int, dataParallelSize: Int) {
        self.serverLoad = serverLoad; self.numRequestsRunning = numRequestsRunning; self.numRequestsWaiting = numRequestsWaiting
        self.kvCacheUsagePerc = kvCacheUsagePerc; self.dataParallelRank = dataParallelRank; self.dataParallelSize = dataParallelSize
    }
    enum CodingKeys: String, CodingKey {
        case serverLoad = "server_load", numRequestsRunning = "num_requests_running"
        case numRequestsWaiting = "num_requests_waiting", kvCacheUsagePerc = "kv_cache_usage_perc"
        case dataParallelRank = "data_parallel_rank", dataParallelSize = "data_parallel_size", engines
    }
}

/// One data-parallel rank's load in `/load`.
public struct EngineLoad: Sendable, Codable, Equatable {
    public var rank: Int
    public var up: Bool
    /// The engine core's process id.
    public var pid: Int
    public var numBlocks: Int
    public var numRequestsRunning: Int
    public var numRequestsWaiting: Int
    public var kvCacheUsagePerc: Double
    public var prefixCacheQueries: Int
    public var prefixCacheHits: Int
    public init(rank: Int, up: Bool, pid: Int, numBlocks: Int, numRequestsRunning: Int, numRequestsWaiting: Int, kvCacheUsagePerc: Double,
                prefixCacheQueries: Int, prefixCacheHits: Int) {
        self.rank = rank; self.up = up; self.pid = pid; self.numBlocks = numBlocks; self.numRequestsRunning = numRequestsRunning
        self.numRequestsWaiting = numRequestsWaiting; self.kvCacheUsagePerc = kvCacheUsagePerc
        self.prefixCacheQueries = prefixCacheQueries; self.prefixCacheHits = prefixCacheHits
    }
    enum CodingKeys: String, CodingKey {
        case rank, up, pid, numBlocks = "num_blocks", numRequestsRunning = "num_requests_running"
        case numRequestsWaiting = "num_requests_waiting", kvCacheUsagePerc = "kv_cache_usage_perc"
        case prefixCacheQueries = "prefix_cache_queries", prefixCacheHits = "prefix_cache_hits"
    }
}

/// `/health` of a data-parallel server with ranks down (still 200 while one serves).
public struct HealthResponse: Sendable, Codable, Equatable {
    public var status: String
    public var downRanks: [Int]
    public init(status: String, downRanks: [Int]) { self.status = status; self.downRanks = downRanks }
    enum CodingKeys: String, CodingKey { case status, downRanks = "down_ranks" }
}
