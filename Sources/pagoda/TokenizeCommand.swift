import ArgumentParser

/// `pagoda tokenize`: Tokenize text or render and tokenize a chat.
struct TokenizeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tokenize", abstract: "Tokenize text or render and tokenize a chat.")

    func run() async throws {
        throw ValidationError("pagoda tokenize is not built yet")
    }
}
