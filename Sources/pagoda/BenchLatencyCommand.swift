import ArgumentParser

/// `pagoda bench latency`: Offline latency benchmark (vLLM's bench latency).
struct BenchLatencyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "latency", abstract: "Offline latency benchmark (vLLM's bench latency).")

    func run() async throws {
        throw ValidationError("pagoda bench latency is not built yet")
    }
}
