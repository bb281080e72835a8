import ArgumentParser
import Foundation
import PagodaTokenizer

/// Renders a messages file with the tokenizer's chat template for `pagoda tokenize --messages-file`.
enum ChatPromptRenderer {
    static func render(tokenizer: Tokenizer, messagesFile: String, addGenerationPrompt: Bool, kwargsJSON: String?) throws -> String {
        guard let data = FileManager.default.contents(atPath: messagesFile) else {
            throw TokenizerCLIError("\(messagesFile): file not found or unreadable")
        }
        guard (try? JSONSerialization.jsonObject(with: data)) is [Any] else {
            throw TokenizerCLIError("\(messagesFile): expected a JSON list of messages")
        }
        if let k = kwargsJSON, !((try? JSONSerialization.jsonObject(with: Data(k.utf8))) is [String: Any]) {
            throw TokenizerCLIError("--chat-template-kwargs: expected a JSON object")
        }
        throw TokenizerCLIError("--messages-file: chat templates are not available in this build (PagodaTokenizer has no Jinja renderer yet)")
    }
}

/// A one-line CLI error for `tokenize`/`detokenize` (printed as "Error: ..." without the usage text).
struct TokenizerCLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}
