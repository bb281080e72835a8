// `apply_chat_template(tokenize=False)` on a loaded tokenizer.

extension Tokenizer {
    /// Renders a chat with this tokenizer's chat template exactly as transformers'
    /// `apply_chat_template(messages, tools=, add_generation_prompt=, chat_template=, **kwargs)` does
    /// with `tokenize=False`.
    ///
    /// - Parameters:
    ///   - messages: OpenAI-style message dicts (build them with `JinjaValue(json:)` to keep key order).
    ///   - tools: tool schemas; nil renders `tools` as None (not an empty list), as transformers does.
    ///   - templateName: a name from tokenizer_config.json's named templates, or a template source;
    ///     nil picks "tool_use" (with tools) / "default" / the only one.
    ///   - extraContext: extra template variables (`chat_template_kwargs`, e.g. `enable_thinking`);
    ///     they override the special tokens, never `messages`/`tools`/`add_generation_prompt`.
    ///   - continueFinalMessage: end the prompt inside the last message so the model continues it.
    /// - Throws: `ChatTemplateError` — `.raised` carries the template's own `raise_exception` message.
    public func applyChatTemplate(
        messages: [JinjaValue], tools: [JinjaValue]? = nil, addGenerationPrompt: Bool, templateName: String? = nil,
        extraContext: [String: JinjaValue] = [:], continueFinalMessage: Bool = false
    ) throws -> String {
        let source = try ChatTemplateSelection.source(templates: config.chatTemplates, name: templateName, hasTools: tools != nil)
        let template = try ChatTemplateCache.shared.template(for: source)
        var special: [String: String] = [:]
        special["bos_token"] = config.bosToken
        special["eos_token"] = config.eosToken
        special["pad_token"] = config.padToken
        special["unk_token"] = config.unkToken
        return try template.renderChat(
            messages: messages, tools: tools, addGenerationPrompt: addGenerationPrompt, specialTokens: special,
            extraContext: extraContext, continueFinalMessage: continueFinalMessage)
    }
}
