import ArgumentParser

/// `pagoda bench throughput`: Offline throughput benchmark (vLLM's bench throughput).
struct BenchThroughputCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "throughput", abstract: "Offline throughput benchmark (vLLM's bench throughput).")

    func run() async throws {
        throw ValidationError("pagoda bench throughput is not built yet")
    }
}
