/// The chat endpoint's settings from `pagoda serve` (vLLM's `--chat-template`,
/// `--chat-template-content-format`, `--reasoning-parser`), validated at the command line.
public struct ChatServingConfig: Sendable {
    /// The chat template source that replaces the model's (`--chat-template`, already read from its file).
    public var chatTemplate: String?
    /// How list content reaches the template (`--chat-template-content-format`).
    public var contentFormat: ChatContentFormatOption = .auto
    /// Splits `<think>…</think>` into `reasoning_content` (`--reasoning-parser`); nil: no split.
    public var reasoningParser: ReasoningParserKind?

    public init() {}
}

/// `--chat-template-content-format`: `auto` detects the form from the template (`JinjaTemplate.contentFormat`).
public enum ChatContentFormatOption: String, Sendable, CaseIterable {
    case auto, string, openai
}
