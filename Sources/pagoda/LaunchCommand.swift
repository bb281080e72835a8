import ArgumentParser

/// `pagoda launch`: Start every data-parallel rank of a node as its own server.
struct LaunchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "launch", abstract: "Start every data-parallel rank of a node as its own server.")

    func run() async throws {
        throw ValidationError("pagoda launch is not built yet")
    }
}
