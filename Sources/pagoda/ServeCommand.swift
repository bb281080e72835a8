import ArgumentParser

/// `pagoda serve`: Serve a model behind an OpenAI-compatible HTTP API.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Serve a model behind an OpenAI-compatible HTTP API.")

    func run() async throws {
        throw ValidationError("pagoda serve is not built yet")
    }
}
