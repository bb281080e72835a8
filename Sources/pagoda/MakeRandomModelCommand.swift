import ArgumentParser

/// `pagoda make-random-model`: Write a random-weight model of a real shape (for benchmarks).
struct MakeRandomModelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "make-random-model", abstract: "Write a random-weight model of a real shape (for benchmarks).")

    func run() async throws {
        throw ValidationError("pagoda make-random-model is not built yet")
    }
}
