import PagodaOpenAI
import PagodaTokenizer

/// Chat messages' `content` in the form the chat template expects (vLLM's
/// `_parse_chat_message_content_parts`): a list of parts becomes one string — the text parts
/// joined with "\n" — for templates that print content as a string, and a list of
/// `{"type": "text", "text": ...}` parts (plain strings wrapped into one) for templates that
/// iterate it. Pagoda serves text-only models, so an image, audio, video or file part is a 400
/// naming its type.
enum ChatContentParts {
    /// Part types that carry text, and the field holding it.
    static let textFields: [String: String] = ["text": "text", "input_text": "text", "refusal": "refusal"]
    /// Part types that need a multimodal model.
    static let mediaTypes: Set<String> = [
        "image_url", "input_image", "image_pil", "image_embeds", "audio_url", "input_audio", "audio_embeds",
        "video_url", "file", "input_file",
    ]

    /// `messages` with every content in `format`; other fields untouched. A null or absent content stays so.
    static func normalize(_ messages: [JSONValue], format: ChatTemplateContentFormat) throws -> [JSONValue] {
        try messages.enumerated().map { k, message in
            guard var m = message.objectValue, let content = m["content"] else { return message }
            switch (content, format) {
            case (.array(let parts), .string):
                m["content"] = .string(try texts(parts, message: k).joined(separator: "\n"))
            case (.array(let parts), .openai):
                m["content"] = .array(try texts(parts, message: k).map { .object(["type": .string("text"), "text": .string($0)]) })
            case (.string(let s), .openai):
                m["content"] = .array([.object(["type": .string("text"), "text": .string(s)])])
            case (.string, .string), (.null, _):
                return message
            default:
                throw OpenAIError.badRequest(
                    "messages[\(k)].content must be a string or a list of content parts", param: "messages[\(k)].content")
            }
            return .object(m)
        }
    }

    /// The text of each part, in order; a part that is not text is a 400 naming its type.
    static func texts(_ parts: [JSONValue], message k: Int) throws -> [String] {
        try parts.enumerated().map { j, part in
            let param = "messages[\(k)].content[\(j)]"
            guard let type = part["type"]?.stringValue else {
                throw OpenAIError.badRequest("\(param) must be an object with a 'type'", param: param)
            }
            if let field = textFields[type] {
                guard let text = part[field]?.stringValue else {
                    throw OpenAIError.badRequest("\(param) of type '\(type)' needs a string '\(field)'", param: param)
                }
                return text
            }
            if mediaTypes.contains(type) {
                throw OpenAIError.badRequest(
                    "content part type '\(type)' is not supported: this model takes text only", param: param)
            }
            throw OpenAIError.badRequest("unknown content part type '\(type)'", param: param)
        }
    }
}

extension OpenAIServing {
    /// The messages with their content in the form `template` (or the model's) expects:
    /// `--chat-template-content-format`, or with `auto` the template's own form.
    func contentNormalizedMessages(_ messages: [JSONValue], template: String?, hasTools: Bool) throws -> [JSONValue] {
        let format: ChatTemplateContentFormat
        switch config.chat.contentFormat {
        case .string: format = .string
        case .openai: format = .openai
        case .auto:
            do { format = try tokenizer.chatTemplateContentFormat(template: template, hasTools: hasTools) } catch {
                throw OpenAIError.badRequest("chat template error: \(error)", param: "messages")
            }
        }
        return try ChatContentParts.normalize(messages, format: format)
    }
}
