// The variables a chat template sees, assembled as transformers' render_jinja_template does.

extension JinjaTemplate {
    /// Renders a chat the way `apply_chat_template(tokenize=False)` does: the special tokens
    /// (`bos_token`, `eos_token`, ...; absent ones stay undefined), then `extraContext` (the
    /// `chat_template_kwargs`, e.g. `enable_thinking`), then `messages`, `tools` (None when nil),
    /// `documents` (None) and `add_generation_prompt`.
    public func renderChat(
        messages: [JinjaValue], tools: [JinjaValue]? = nil, addGenerationPrompt: Bool,
        specialTokens: [String: String] = [:], extraContext: [String: JinjaValue] = [:]
    ) throws -> String {
        var context: [String: JinjaValue] = [:]
        for (name, token) in specialTokens { context[name] = .string(token) }
        for (name, value) in extraContext { context[name] = value }
        context["messages"] = .list(messages)
        context["tools"] = tools.map { .list($0) } ?? .null
        context["documents"] = JinjaValue.null
        context["add_generation_prompt"] = .bool(addGenerationPrompt)
        return try render(context)
    }
}
