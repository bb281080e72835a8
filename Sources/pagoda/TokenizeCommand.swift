import ArgumentParser
import Foundation
import PagodaTokenizer

/// `pagoda tokenize`: Tokenize text or render and tokenize a chat.
/// Prints the ids (space-separated; for a chat the rendered prompt first), or with `--json`
/// `{"prompt": ..., "ids": [...], "text": ...}` where `text` is the decode of the ids.
struct TokenizeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize", abstract: "Tokenize text or render and tokenize a chat.")

    @Argument(help: "Model or tokenizer folder (tokenizer.json, tokenizer_config.json).")
    var directory: String

    @Option(help: "Text to tokenize.")
    var text: String?

    @Option(help: "JSON file with an OpenAI-style messages list to render with the chat template.")
    var messagesFile: String?

    @Flag(help: "End the rendered chat with the assistant's turn header.")
    var addGenerationPrompt = false

    @Option(help: "Extra template variables as a JSON object, e.g. '{\"enable_thinking\": false}'.")
    var chatTemplateKwargs: String?

    @Flag(help: "Add the tokenizer's special tokens (e.g. BOS) as its post-processor says.")
    var addSpecialTokens = false

    @Flag(help: "Print {\"prompt\", \"ids\", \"text\"} as JSON.")
    var json = false

    func validate() throws {
        if (text == nil) == (messagesFile == nil) { throw ValidationError("give exactly one of --text and --messages-file") }
        if messagesFile == nil && (addGenerationPrompt || chatTemplateKwargs != nil) {
            throw ValidationError("--add-generation-prompt and --chat-template-kwargs need --messages-file")
        }
    }

    func run() async throws {
        let tokenizer: Tokenizer
        do {
            tokenizer = try Tokenizer(directory: directory)
        } catch {
            throw TokenizerCLIError("\(error)")
        }
        let prompt: String
        if let t = text {
            prompt = t
        } else {
            prompt = try ChatPromptRenderer.render(
                tokenizer: tokenizer, messagesFile: messagesFile!, addGenerationPrompt: addGenerationPrompt,
                kwargsJSON: chatTemplateKwargs)
        }
        let ids = tokenizer.encode(prompt, addSpecialTokens: addSpecialTokens)
        if json {
            let obj: [String: Any] = ["prompt": prompt, "ids": ids, "text": tokenizer.decode(ids)]
            let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes])
            print(String(decoding: data, as: UTF8.self))
        } else {
            if messagesFile != nil { print(prompt) }
            print(ids.map(String.init).joined(separator: " "))
        }
    }
}
