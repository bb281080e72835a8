import Foundation
import PagodaOpenAI
import PagodaTokenizer

/// `ServingTokenizer` on PagodaTokenizer: the model's `tokenizer.json`, its incremental
/// detokenizer, and its Jinja chat template.
public final class TokenizerAdapter: ServingTokenizer, @unchecked Sendable {
    public let tokenizer: Tokenizer

    /// The model's chat template (tokenizer_config.json), parsed once.
    private let defaultTemplate: JinjaTemplate?
    /// `bos_token`, `eos_token`, ... as the template sees them.
    private let specialTokens: [String: String]

    public init(directory: String) throws {
        tokenizer = try Tokenizer(directory: directory)
        defaultTemplate = try tokenizer.config.defaultChatTemplate.map { try JinjaTemplate(source: $0) }
        var special: [String: String] = [:]
        if let t = tokenizer.config.bosToken { special["bos_token"] = t }
        if let t = tokenizer.config.eosToken { special["eos_token"] = t }
        if let t = tokenizer.config.padToken { special["pad_token"] = t }
        if let t = tokenizer.config.unkToken { special["unk_token"] = t }
        specialTokens = special
    }

    public var vocabSize: Int { tokenizer.vocabSize }

    public func encode(_ text: String, addSpecialTokens: Bool) -> [Int] {
        tokenizer.encode(text, addSpecialTokens: addSpecialTokens)
    }

    public func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        tokenizer.decode(ids, skipSpecialTokens: skipSpecialTokens)
    }

    public func tokenText(_ id: Int) -> String { tokenizer.decode([id], skipSpecialTokens: false) }

    public func makeDetokenizer(skipSpecialTokens: Bool, promptTokenIds: [Int]) -> any StreamingDetokenizer {
        Detokenizer(IncrementalDetokenizer(tokenizer: tokenizer, skipSpecialTokens: skipSpecialTokens, promptTokenIds: promptTokenIds))
    }

    public func renderChat(_ chat: ChatRenderRequest) throws -> String {
        func jinja(_ v: JSONValue) throws -> JinjaValue { try JinjaValue(json: v.jsonData()) }
        let messages = try chat.messages.map(jinja)
        let tools = try chat.tools.map { try $0.map(jinja) }
        var extra: [String: JinjaValue] = [:]
        for (k, v) in chat.extraContext { extra[k] = try jinja(v) }
        let template: JinjaTemplate
        if let source = chat.template {
            template = try JinjaTemplate(source: source)
        } else if let t = defaultTemplate {
            template = t
        } else {
            throw ChatTemplateMissing()
        }
        let rendered = try template.renderChat(
            messages: messages, tools: tools, addGenerationPrompt: chat.addGenerationPrompt,
            specialTokens: specialTokens, extraContext: extra)
        guard chat.continueFinalMessage, let last = chat.messages.last?["content"]?.stringValue, !last.isEmpty else { return rendered }
        // vLLM's continue_final_message: the text ends where the final message's content ends
        // (the template's end-of-turn markup after it is dropped).
        guard let r = rendered.range(of: last, options: .backwards) else { return rendered }
        return String(rendered[..<r.upperBound])
    }

    struct ChatTemplateMissing: Error, CustomStringConvertible {
        var description: String { "this model has no chat template (tokenizer_config.json has no chat_template); pass one as 'chat_template'" }
    }

    /// Reference wrapper over the value-type `IncrementalDetokenizer`.
    final class Detokenizer: StreamingDetokenizer {
        var inner: IncrementalDetokenizer
        init(_ inner: IncrementalDetokenizer) { self.inner = inner }
        func add(_ id: Int) -> String { inner.add(id) }
        func finish() -> String { inner.finish() }
    }
}
