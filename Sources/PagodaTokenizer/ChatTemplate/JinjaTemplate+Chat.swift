// The variables a chat template sees, assembled as transformers' render_jinja_template does.

extension JinjaTemplate {
    /// Renders a chat the way `apply_chat_template(tokenize=False)` does: the special tokens
    /// (`bos_token`, `eos_token`, ...; absent ones stay undefined), then `extraContext` (the
    /// `chat_template_kwargs`, e.g. `enable_thinking`), then `messages`, `tools` (None when nil),
    /// `documents` (None unless `extraContext` gives them: vLLM's `documents` request field) and
    /// `add_generation_prompt`.
    /// With `continueFinalMessage`, the text after the last message's content is cut off, so the model
    /// continues that message (transformers' and vLLM's `continue_final_message`).
    public func renderChat(
        messages: [JinjaValue], tools: [JinjaValue]? = nil, addGenerationPrompt: Bool,
        specialTokens: [String: String] = [:], extraContext: [String: JinjaValue] = [:], continueFinalMessage: Bool = false
    ) throws -> String {
        if continueFinalMessage && addGenerationPrompt {
            throw ChatTemplateError(.runtime, "continue_final_message and add_generation_prompt are not compatible")
        }
        var context: [String: JinjaValue] = [:]
        for (name, token) in specialTokens { context[name] = .string(token) }
        for (name, value) in extraContext { context[name] = value }
        context["messages"] = .list(messages)
        context["tools"] = tools.map { .list($0) } ?? .null
        if context["documents"] == nil { context["documents"] = JinjaValue.null }
        context["add_generation_prompt"] = .bool(addGenerationPrompt)
        let rendered = try render(context)
        return continueFinalMessage ? try Self.cutAfterFinalMessage(rendered, messages: messages) : rendered
    }

    /// transformers' continue_final_message: cut the render right after the last occurrence of the final
    /// message's text (its last text part for a list of content parts). If the template trimmed trailing
    /// whitespace from that text, the cut follows the trimmed text.
    static func cutAfterFinalMessage(_ rendered: String, messages: [JinjaValue]) throws -> String {
        var finalText: String? = messages.last?["content"]?.stringValue
        if finalText == nil, let parts = messages.last?["content"]?.arrayValue {
            finalText = parts.reversed().lazy.compactMap { $0["text"]?.stringValue }.first
        }
        guard let final = finalText else {
            throw ChatTemplateError(.runtime, "continue_final_message is set but the final message has no text to continue")
        }
        let stripped = Array(PythonString.strip(final, nil, left: true, right: true).unicodeScalars)
        let leftStripped = Array(PythonString.strip(final, nil, left: true, right: false).unicodeScalars)
        let out = Array(rendered.unicodeScalars)
        guard let loc = PythonString.rfind(out, stripped) else {
            throw ChatTemplateError(
                .runtime,
                "continue_final_message is set but the final message does not appear in the chat after applying the chat template")
        }
        let end = loc + leftStripped.count
        let keepsSpacing = end <= out.count && out[loc..<end].elementsEqual(final.unicodeScalars)
        return PythonString.string(out[..<(keepsSpacing ? end : loc + stripped.count)])
    }
}
