import ArgumentParser

/// `pagoda generate`: Generate text offline for one or more prompts.
struct GenerateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "generate", abstract: "Generate text offline for one or more prompts.")

    func run() async throws {
        throw ValidationError("pagoda generate is not built yet")
    }
}
