import ArgumentParser

/// `pagoda engine-core`: Run one engine core process (started by serve; hidden).
struct EngineCoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "engine-core", abstract: "Run one engine core process (started by serve; hidden).", shouldDisplay: false)

    func run() async throws {
        throw ValidationError("pagoda engine-core is not built yet")
    }
}
