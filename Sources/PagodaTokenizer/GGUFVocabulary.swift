/// The tokenizer a GGUF file describes, as its `tokenizer.*` metadata keys give it (llama.cpp's names). The model
/// layer reads the file and fills this in (`init(metadata:path:)` takes the keys as plain Swift values);
/// `Tokenizer(gguf:)` builds the pipeline. Kept free of the GGUF reader so this module stays below PagodaModel.
///
/// | key | field |
/// | --- | --- |
/// | `tokenizer.ggml.model` | `model`: `gpt2` (byte-level BPE) or `llama` (SentencePiece BPE with byte fallback) |
/// | `tokenizer.ggml.pre` | `preTokenizer`: the family of the splitting regexes (`GGUFPreTokenizers`) |
/// | `tokenizer.ggml.tokens`, `.scores`, `.token_type`, `.merges` | `tokens` (id order), `scores`, `tokenTypes`, `merges` ("left right") |
/// | `tokenizer.ggml.bos_token_id`, `.eos_token_id`, `.unknown_token_id`, `.padding_token_id` | the special ids |
/// | `tokenizer.ggml.add_bos_token`, `.add_eos_token`, `.add_space_prefix` | `addBosToken`, `addEosToken`, `addSpacePrefix` |
/// | `tokenizer.chat_template`, `tokenizer.chat_template.<name>` | `chatTemplate`, `namedChatTemplates` |
public struct GGUFVocabulary: Sendable {
    /// llama.cpp's `llama_token_type` values in `tokenizer.ggml.token_type`.
    public enum TokenType: Int, Sendable {
        case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    /// The file, for error messages.
    public var path: String
    public var model: String
    public var preTokenizer: String?
    public var tokens: [String]
    public var scores: [Double]?
    public var tokenTypes: [Int]?
    public var merges: [String]?
    public var bosTokenId: Int?
    public var eosTokenId: Int?
    public var unknownTokenId: Int?
    public var paddingTokenId: Int?
    public var addBosToken: Bool?
    public var addEosToken: Bool?
    public var addSpacePrefix: Bool?
    public var chatTemplate: String?
    public var namedChatTemplates: [String: String]

    public init(
        path: String, model: String, preTokenizer: String? = nil, tokens: [String], scores: [Double]? = nil,
        tokenTypes: [Int]? = nil, merges: [String]? = nil, bosTokenId: Int? = nil, eosTokenId: Int? = nil,
        unknownTokenId: Int? = nil, paddingTokenId: Int? = nil, addBosToken: Bool? = nil, addEosToken: Bool? = nil,
        addSpacePrefix: Bool? = nil, chatTemplate: String? = nil, namedChatTemplates: [String: String] = [:]
    ) {
        self.path = path
        self.model = model
        self.preTokenizer = preTokenizer
        self.tokens = tokens
        self.scores = scores
        self.tokenTypes = tokenTypes
        self.merges = merges
        self.bosTokenId = bosTokenId
        self.eosTokenId = eosTokenId
        self.unknownTokenId = unknownTokenId
        self.paddingTokenId = paddingTokenId
        self.addBosToken = addBosToken
        self.addEosToken = addEosToken
        self.addSpacePrefix = addSpacePrefix
        self.chatTemplate = chatTemplate
        self.namedChatTemplates = namedChatTemplates
    }

    /// From the file's metadata as plain values: strings as `String`, integers as `Int`, floats as `Double`, bools
    /// as `Bool`, arrays as `[String]` / `[Int]` / `[Double]`. Keys other than `tokenizer.*` are ignored; a key of
    /// the wrong type is an error naming it.
    public init(metadata m: [String: Any], path: String) throws {
        func bad(_ key: String, _ expected: String) -> TokenizerError {
            .invalidField(path: path, field: key, reason: "expected \(expected)")
        }
        func get<T>(_ key: String, _ expected: String, as: T.Type) throws -> T? {
            guard let v = m[key] else { return nil }
            guard let t = v as? T else { throw bad(key, expected) }
            return t
        }
        func id(_ name: String) throws -> Int? { try get("tokenizer.ggml.\(name)", "an integer", as: Int.self) }
        func flag(_ name: String) throws -> Bool? { try get("tokenizer.ggml.\(name)", "a bool", as: Bool.self) }

        guard let model = try get("tokenizer.ggml.model", "a string", as: String.self) else {
            throw TokenizerError.invalidField(path: path, field: "tokenizer.ggml.model", reason: "missing")
        }
        guard let tokens = try get("tokenizer.ggml.tokens", "an array of strings", as: [String].self) else {
            throw TokenizerError.invalidField(path: path, field: "tokenizer.ggml.tokens", reason: "missing")
        }
        let scores: [Double]?
        if let ints = m["tokenizer.ggml.scores"] as? [Int] {
            scores = ints.map(Double.init)
        } else {
            scores = try get("tokenizer.ggml.scores", "an array of numbers", as: [Double].self)
        }
        var named: [String: String] = [:]
        let prefix = "tokenizer.chat_template."
        for (k, v) in m where k.hasPrefix(prefix) {
            guard let s = v as? String else { throw bad(k, "a string") }
            named[String(k.dropFirst(prefix.count))] = s
        }
        self.init(
            path: path, model: model, preTokenizer: try get("tokenizer.ggml.pre", "a string", as: String.self), tokens: tokens,
            scores: scores, tokenTypes: try get("tokenizer.ggml.token_type", "an array of integers", as: [Int].self),
            merges: try get("tokenizer.ggml.merges", "an array of strings", as: [String].self),
            bosTokenId: try id("bos_token_id"), eosTokenId: try id("eos_token_id"), unknownTokenId: try id("unknown_token_id"),
            paddingTokenId: try id("padding_token_id"), addBosToken: try flag("add_bos_token"),
            addEosToken: try flag("add_eos_token"), addSpacePrefix: try flag("add_space_prefix"),
            chatTemplate: try get("tokenizer.chat_template", "a string", as: String.self), namedChatTemplates: named)
    }

    /// The type of token `id` (normal where the file gives none).
    func type(of id: Int) -> TokenType {
        guard let types = tokenTypes, id < types.count else { return .normal }
        return TokenType(rawValue: types[id]) ?? .normal
    }
}
