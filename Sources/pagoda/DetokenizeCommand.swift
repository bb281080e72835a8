import ArgumentParser

/// `pagoda detokenize`: Turn token ids back into text.
struct DetokenizeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "detokenize", abstract: "Turn token ids back into text.")

    func run() async throws {
        throw ValidationError("pagoda detokenize is not built yet")
    }
}
