import ArgumentParser

/// `pagoda bench serve`: Serving benchmark against an OpenAI-compatible server (vLLM's bench serve).
struct BenchServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Serving benchmark against an OpenAI-compatible server (vLLM's bench serve).")

    func run() async throws {
        throw ValidationError("pagoda bench serve is not built yet")
    }
}
