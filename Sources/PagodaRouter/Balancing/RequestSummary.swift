import Foundation

/// What the proxy reads from a completion request body to route it; the body itself is passed on untouched.
///
/// Only `model`, `prompt`/`messages`, `max_tokens`/`max_completion_tokens`, `ignore_eos` and `stream`
/// are looked at. `promptText` is the text the cost and the prefix key are computed from:
/// a completion prompt as is (several prompts joined), a chat's messages as `role: content` lines.
public struct RequestSummary: Equatable, Sendable {
    public var model: String?
    /// Prompt text, or nil when the prompt was given as token ids.
    public var promptText: String
    /// Exact prompt length when the request carried token ids (`prompt: [1, 2, 3]`).
    public var promptTokenIds: [Int]?
    public var maxTokens: Int?
    public var ignoreEOS: Bool
    public var stream: Bool

    public init(model: String? = nil, promptText: String, promptTokenIds: [Int]? = nil, maxTokens: Int? = nil,
                ignoreEOS: Bool = false, stream: Bool = false) {
        self.model = model
        self.promptText = promptText
        self.promptTokenIds = promptTokenIds
        self.maxTokens = maxTokens
        self.ignoreEOS = ignoreEOS
        self.stream = stream
    }

    /// Why a body could not be routed; becomes a 400 OpenAI error naming the field.
    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public let param: String?
        public let message: String
        public var description: String { message }
    }

    /// Reads a `/v1/completions` (`isChat == false`) or `/v1/chat/completions` body: `RoutingFieldScanner`
    /// when it takes the body, else (unusual shapes, every error) `JSONDecoder`.
    public init(json body: [UInt8], isChat: Bool) throws {
        if let summary = RoutingFieldScanner.summary(body, isChat: isChat) {
            self = summary
        } else {
            try self.init(decoding: body, isChat: isChat)
        }
    }

    /// The `JSONDecoder` path, which names the field of any error.
    init(decoding body: [UInt8], isChat: Bool) throws {
        let wire: WireBody
        do {
            wire = try JSONDecoder().decode(WireBody.self, from: Data(body))
        } catch let error as DecodingError {
            throw ParseError(decoding: error)
        } catch {
            throw ParseError(param: nil, message: "request body is not valid JSON")
        }
        self.init(promptText: "")
        model = wire.model
        stream = wire.stream ?? false
        ignoreEOS = wire.ignore_eos ?? false
        maxTokens = wire.max_tokens ?? wire.max_completion_tokens
        if isChat {
            guard let messages = wire.messages else {
                throw ParseError(param: "messages", message: "'messages' is required and must be an array")
            }
            promptText = messages.map { ($0.role ?? "") + ": " + ($0.content?.text ?? "") + "\n" }.joined()
        } else {
            switch wire.prompt {
            case nil: throw ParseError(param: "prompt", message: "'prompt' is required")
            case .text(let text): promptText = text
            case .tokenIds(let ids):
                promptTokenIds = ids
                promptText = ids.map(String.init).joined(separator: " ")
            }
        }
    }

    /// The fields the proxy reads; every other field is ignored (and passed on in the raw body).
    private struct WireBody: Decodable {
        var model: String?
        var prompt: Prompt?
        var messages: [Message]?
        var max_tokens: Int?
        var max_completion_tokens: Int?
        var ignore_eos: Bool?
        var stream: Bool?
    }

    /// `prompt`: a string, strings (joined by newlines), token ids, or batches of token ids (concatenated).
    private enum Prompt: Decodable {
        case text(String)
        case tokenIds([Int])

        init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let text = try? container.decode(String.self) { self = .text(text); return }
            if let texts = try? container.decode([String].self) { self = .text(texts.joined(separator: "\n")); return }
            if let ids = try? container.decode([Int].self) { self = .tokenIds(ids); return }
            if let batches = try? container.decode([[Int]].self) { self = .tokenIds(batches.flatMap { $0 }); return }
            throw DecodingError.typeMismatch(
                String.self,
                .init(codingPath: decoder.codingPath,
                      debugDescription: "must be a string, an array of strings or an array of token ids"))
        }
    }

    private struct Message: Decodable {
        var role: String?
        var content: Content?
    }

    /// A message's `content`: a string or parts (`{"type": "text", "text": ...}`; other parts add nothing).
    private struct Content: Decodable {
        var text: String

        private struct Part: Decodable { var text: String? }

        init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if container.decodeNil() { text = ""; return }
            if let string = try? container.decode(String.self) { text = string; return }
            text = try container.decode([Part].self).compactMap(\.text).joined()
        }
    }
}

extension RequestSummary.ParseError {
    /// Names the field (`messages[0].content`) the decoder stopped at.
    init(decoding error: DecodingError) {
        func path(_ keys: [CodingKey]) -> String {
            keys.reduce("") { acc, key in
                if let index = key.intValue { return acc + "[\(index)]" }
                return acc.isEmpty ? key.stringValue : acc + "." + key.stringValue
            }
        }
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            let name = path(context.codingPath)
            let detail = context.debugDescription.hasPrefix("must") ? context.debugDescription : "has the wrong type"
            self.init(param: name, message: "'\(name)' \(detail)")
        case .dataCorrupted(let context) where !context.codingPath.isEmpty:
            let name = path(context.codingPath)
            self.init(param: name, message: "'\(name)' is invalid")
        case .keyNotFound(let key, _):
            self.init(param: key.stringValue, message: "'\(key.stringValue)' is required")
        default:
            self.init(param: nil, message: "request body is not a valid JSON object")
        }
    }
}
