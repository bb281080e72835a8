import Foundation

/// tokenizer_config.json (with special_tokens_map.json filling in missing special tokens): the special-token
/// strings, BOS/EOS flags and chat templates transformers reads next to tokenizer.json.
public struct TokenizerConfig: @unchecked Sendable {
    public var bosToken: String?
    public var eosToken: String?
    public var padToken: String?
    public var unkToken: String?
    public var addBosToken: Bool?
    public var addEosToken: Bool?
    /// Template name -> source. A plain string `chat_template` is stored under "default".
    public var chatTemplates: [String: String]
    /// The whole parsed tokenizer_config.json, for fields not modeled here.
    public var raw: [String: Any]

    /// The template used when none is named: "default" if present, else the only one.
    public var defaultChatTemplate: String? {
        chatTemplates["default"] ?? (chatTemplates.count == 1 ? chatTemplates.first!.value : nil)
    }

    public init(
        bosToken: String? = nil, eosToken: String? = nil, padToken: String? = nil, unkToken: String? = nil,
        addBosToken: Bool? = nil, addEosToken: Bool? = nil, chatTemplates: [String: String] = [:], raw: [String: Any] = [:]
    ) {
        self.bosToken = bosToken
        self.eosToken = eosToken
        self.padToken = padToken
        self.unkToken = unkToken
        self.addBosToken = addBosToken
        self.addEosToken = addEosToken
        self.chatTemplates = chatTemplates
        self.raw = raw
    }

    /// Reads `directory`/tokenizer_config.json and special_tokens_map.json; both are optional, but a file
    /// that exists must be valid JSON. A separate `chat_template.jinja` / `chat_template.json` is read too.
    public init(directory: String) throws {
        let configPath = (directory as NSString).appendingPathComponent("tokenizer_config.json")
        let mapPath = (directory as NSString).appendingPathComponent("special_tokens_map.json")
        var raw: [String: Any] = [:]
        if FileManager.default.fileExists(atPath: configPath) { raw = try JSONObject.load(path: configPath).dict }
        var map: [String: Any] = [:]
        if FileManager.default.fileExists(atPath: mapPath) { map = try JSONObject.load(path: mapPath).dict }

        func token(_ key: String) throws -> String? {
            if let v = raw[key], !(v is NSNull) {
                guard let s = TokenizerConfig.tokenContent(v) else {
                    throw TokenizerError.invalidField(path: configPath, field: key, reason: "expected a string or {\"content\": ...}")
                }
                return s
            }
            if let v = map[key], !(v is NSNull) {
                guard let s = TokenizerConfig.tokenContent(v) else {
                    throw TokenizerError.invalidField(path: mapPath, field: key, reason: "expected a string or {\"content\": ...}")
                }
                return s
            }
            return nil
        }
        func flag(_ key: String) throws -> Bool? {
            guard let v = raw[key], !(v is NSNull) else { return nil }
            guard let b = v as? Bool else { throw TokenizerError.invalidField(path: configPath, field: key, reason: "expected a boolean") }
            return b
        }

        var templates: [String: String] = [:]
        if let t = raw["chat_template"], !(t is NSNull) {
            if let s = t as? String {
                templates["default"] = s
            } else if let list = t as? [Any] {
                for (i, item) in list.enumerated() {
                    guard let d = item as? [String: Any], let name = d["name"] as? String, let src = d["template"] as? String else {
                        throw TokenizerError.invalidField(
                            path: configPath, field: "chat_template[\(i)]", reason: "expected {\"name\": ..., \"template\": ...}")
                    }
                    templates[name] = src
                }
            } else {
                throw TokenizerError.invalidField(path: configPath, field: "chat_template", reason: "expected a string or a list")
            }
        }
        // transformers also reads a chat template from its own files; tokenizer_config.json wins if both exist.
        let jinjaPath = (directory as NSString).appendingPathComponent("chat_template.jinja")
        if templates["default"] == nil, let data = FileManager.default.contents(atPath: jinjaPath) {
            templates["default"] = String(decoding: data, as: UTF8.self)
        }
        let jsonPath = (directory as NSString).appendingPathComponent("chat_template.json")
        if templates["default"] == nil, FileManager.default.fileExists(atPath: jsonPath) {
            let obj = try JSONObject.load(path: jsonPath)
            if let s = obj.dict["chat_template"] as? String { templates["default"] = s }
        }

        self.init(
            bosToken: try token("bos_token"), eosToken: try token("eos_token"), padToken: try token("pad_token"),
            unkToken: try token("unk_token"), addBosToken: try flag("add_bos_token"), addEosToken: try flag("add_eos_token"),
            chatTemplates: templates, raw: raw)
    }

    /// A special token given as a string or as an AddedToken object `{"content": ...}`.
    static func tokenContent(_ v: Any) -> String? {
        if let s = v as? String { return s }
        if let d = v as? [String: Any], let s = d["content"] as? String { return s }
        return nil
    }
}
