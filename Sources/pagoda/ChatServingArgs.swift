import ArgumentParser
import Foundation
import PagodaServer

/// The chat flags of `pagoda serve` (vLLM's names), turned into `ChatServingConfig` once here.
struct ChatServingArgs: ParsableArguments {
    @Option(
        name: .customLong("chat-template"),
        help: "Chat template replacing the model's: a file path, or the template itself (vLLM's --chat-template).")
    var chatTemplate: String?

    @Option(
        name: .customLong("chat-template-content-format"),
        help:
            "How list content reaches the template: auto (detected from the template), string (text parts joined with newlines) or openai (a list of parts)."
    )
    var contentFormat: String = "auto"

    @Option(
        name: .customLong("reasoning-parser"),
        help: "Split <think>…</think> into reasoning_content on chat responses: deepseek_r1 or qwen3.")
    var reasoningParser: String?

    func validate() throws {
        if ChatContentFormatOption(rawValue: contentFormat) == nil {
            throw ValidationError("invalid --chat-template-content-format '\(contentFormat)': choose auto, string or openai")
        }
        if let name = reasoningParser, ReasoningParserKind(rawValue: name) == nil {
            let known = ReasoningParserKind.allCases.map(\.rawValue).joined(separator: ", ")
            throw ValidationError("invalid --reasoning-parser '\(name)': choose one of \(known)")
        }
    }

    /// The settings, with `--chat-template` read from its file (vLLM: a path that exists is read;
    /// otherwise text with Jinja markup is the template itself). The template is parsed by its
    /// first request; a syntax error there is a 400 naming the line.
    func makeConfig() throws -> ChatServingConfig {
        var c = ChatServingConfig()
        c.contentFormat = ChatContentFormatOption(rawValue: contentFormat) ?? .auto
        c.reasoningParser = reasoningParser.flatMap(ReasoningParserKind.init(rawValue:))
        if let t = chatTemplate {
            if FileManager.default.fileExists(atPath: t) {
                guard let text = try? String(contentsOfFile: t, encoding: .utf8) else {
                    throw ValidationError("invalid --chat-template: cannot read \(t)")
                }
                c.chatTemplate = text
            } else if t.contains("{{") || t.contains("{%") {
                c.chatTemplate = t
            } else {
                throw ValidationError("invalid --chat-template: \(t) is neither a file nor a template")
            }
        }
        return c
    }
}
