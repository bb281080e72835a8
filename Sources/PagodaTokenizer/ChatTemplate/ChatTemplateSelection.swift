// Which chat template a request uses, and a cache of parsed templates.

import Foundation

/// transformers' `get_chat_template`: picks the template source from a tokenizer's named templates.
enum ChatTemplateSelection {
    /// - `name` names one of `templates`; a `name` that is not a key but contains Jinja tags is itself the
    ///   template source (transformers accepts a source string there too).
    /// - With no name: "tool_use" when tools are passed and it exists, else "default", else the only one.
    /// - Throws `.missingTemplate` when nothing applies (transformers raises ValueError).
    static func source(templates: [String: String], name: String?, hasTools: Bool) throws -> String {
        if let name = name {
            if let s = templates[name] { return s }
            if name.contains("{{") || name.contains("{%") { return name }
            let available = templates.keys.sorted().map { "'\($0)'" }.joined(separator: ", ")
            throw ChatTemplateError(
                .missingTemplate,
                "no chat template named '\(name)'" + (templates.isEmpty ? "; the tokenizer has none" : " (available: \(available))"))
        }
        if hasTools, let s = templates["tool_use"] { return s }
        if let s = templates["default"] { return s }
        if templates.count == 1 { return templates.first!.value }
        if templates.isEmpty {
            throw ChatTemplateError(
                .missingTemplate,
                "cannot apply a chat template: tokenizer_config.json has no chat_template and none was given")
        }
        throw ChatTemplateError(
            .missingTemplate,
            "this model has several chat templates and no default; name one of: "
                + templates.keys.sorted().map { "'\($0)'" }.joined(separator: ", "))
    }
}

/// Parsed templates by source text, so a server parses each template once, not per request.
/// Thread-safe; bounded (a client-supplied template per request must not grow it without limit).
final class ChatTemplateCache: @unchecked Sendable {
    static let shared = ChatTemplateCache()

    private let lock = NSLock()
    private var templates: [String: JinjaTemplate] = [:]
    private let capacity = 32

    func template(for source: String) throws -> JinjaTemplate {
        lock.lock()
        let cached = templates[source]
        lock.unlock()
        if let t = cached { return t }
        let parsed = try JinjaTemplate(source: source)
        lock.lock()
        if templates.count >= capacity { templates.removeAll(keepingCapacity: true) }
        templates[source] = parsed
        lock.unlock()
        return parsed
    }
}
