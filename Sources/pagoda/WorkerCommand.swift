import ArgumentParser

/// `pagoda worker`: Run one tensor/pipeline-parallel worker process (started by the engine; hidden).
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "worker", abstract: "Run one tensor/pipeline-parallel worker process (started by the engine; hidden).", shouldDisplay: false)

    func run() async throws {
        throw ValidationError("pagoda worker is not built yet")
    }
}
