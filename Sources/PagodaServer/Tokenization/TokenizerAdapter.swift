import Foundation
import PagodaEngine
import PagodaOpenAI
import PagodaTokenizer

/// `ServingTokenizer` on PagodaTokenizer: the model's `tokenizer.json`, its incremental
/// detokenizer, and its Jinja chat template.
public final class TokenizerAdapter: ServingTokenizer, @unchecked Sendable {
    public let tokenizer: Tokenizer

    public init(directory: String) throws {
        tokenizer = try ModelTokenizer.load(directory)
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
        // A template in the request is passed as the template name: applyChatTemplate takes a
        // name from tokenizer_config.json or a template source.
        return try tokenizer.applyChatTemplate(
            messages: messages, tools: tools, addGenerationPrompt: chat.addGenerationPrompt, templateName: chat.template,
            extraContext: extra, continueFinalMessage: chat.continueFinalMessage)
    }

    public func chatTemplateContentFormat(template: String?, hasTools: Bool) throws -> ChatTemplateContentFormat {
        try tokenizer.chatTemplateContentFormat(templateName: template, hasTools: hasTools)
    }

    /// Reference wrapper over the value-type `IncrementalDetokenizer`.
    final class Detokenizer: StreamingDetokenizer {
        var inner: IncrementalDetokenizer
        init(_ inner: IncrementalDetokenizer) { self.inner = inner }
        func add(_ id: Int) -> String { inner.add(id) }
        func finish() -> String { inner.finish() }
    }
}
