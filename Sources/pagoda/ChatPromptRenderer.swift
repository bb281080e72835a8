import Foundation
import PagodaTokenizer

/// Renders a messages file with the tokenizer's chat template for `pagoda tokenize --messages-file`
/// (`Tokenizer.applyChatTemplate`, i.e. transformers' `apply_chat_template(tokenize=False)`).
enum ChatPromptRenderer {
    static func render(tokenizer: Tokenizer, messagesFile: String, addGenerationPrompt: Bool, kwargsJSON: String?) throws -> String {
        guard let data = FileManager.default.contents(atPath: messagesFile) else {
            throw TokenizerCLIError("\(messagesFile): file not found or unreadable")
        }
        let messages: [JinjaValue]
        do {
            guard case .list(let list) = try JinjaValue(json: data) else {
                throw TokenizerCLIError("\(messagesFile): expected a JSON list of messages")
            }
            messages = list
        } catch let e as TokenizerCLIError {
            throw e
        } catch {
            throw TokenizerCLIError("\(messagesFile): invalid JSON: \(error)")
        }
        var extra: [String: JinjaValue] = [:]
        if let k = kwargsJSON {
            guard case .dict(let d)? = try? JinjaValue(jsonString: k) else {
                throw TokenizerCLIError("--chat-template-kwargs: expected a JSON object")
            }
            for (key, value) in d.items { extra[key] = value }
        }
        do {
            return try tokenizer.applyChatTemplate(messages: messages, addGenerationPrompt: addGenerationPrompt, extraContext: extra)
        } catch {
            throw TokenizerCLIError("chat template: \(error)")
        }
    }
}

/// A one-line CLI error for `tokenize`/`detokenize` (printed as "Error: ..." without the usage text).
struct TokenizerCLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}
