import PagodaOpenAI
import PagodaTokenizer

/// The tokenizer as the front-end needs it: encode prompts, render chats, detokenize outputs
/// incrementally. `TokenizerAdapter` implements it with `PagodaTokenizer.Tokenizer`; unit
/// tests use a small double.
public protocol ServingTokenizer: AnyObject, Sendable {
    func encode(_ text: String, addSpecialTokens: Bool) -> [Int]
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String
    /// The text of one token on its own (logprobs entries).
    func tokenText(_ id: Int) -> String
    /// A detokenizer that turns one request's output ids into text as they arrive.
    func makeDetokenizer(skipSpecialTokens: Bool, promptTokenIds: [Int]) -> any StreamingDetokenizer
    /// The chat rendered with the model's chat template.
    func renderChat(_ chat: ChatRenderRequest) throws -> String
    /// The content form the chat template (`template`, else the model's) expects; see `ChatContentParts`.
    func chatTemplateContentFormat(template: String?, hasTools: Bool) throws -> ChatTemplateContentFormat
    var vocabSize: Int { get }
}

/// Everything a chat template may see.
public struct ChatRenderRequest: Sendable {
    public var messages: [JSONValue]
    public var tools: [JSONValue]?
    public var addGenerationPrompt: Bool
    public var continueFinalMessage: Bool
    /// `chat_template_kwargs`: extra template variables (e.g. `enable_thinking`).
    public var extraContext: [String: JSONValue]
    /// A template given in the request instead of the model's.
    public var template: String?
    public init(
        messages: [JSONValue], tools: [JSONValue]? = nil, addGenerationPrompt: Bool, continueFinalMessage: Bool = false,
        extraContext: [String: JSONValue] = [:], template: String? = nil
    ) {
        self.messages = messages; self.tools = tools; self.addGenerationPrompt = addGenerationPrompt
        self.continueFinalMessage = continueFinalMessage; self.extraContext = extraContext; self.template = template
    }
}

/// Turns output token ids into text incrementally, never splitting a UTF-8 sequence.
public protocol StreamingDetokenizer: AnyObject {
    /// Text made final by `id`.
    func add(_ id: Int) -> String
    /// Whatever is left at the end of the request.
    func finish() -> String
}
