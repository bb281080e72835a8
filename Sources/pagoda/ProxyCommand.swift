import ArgumentParser

/// `pagoda proxy`: Request-length-aware load-balancing proxy over data-parallel servers.
struct ProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "proxy", abstract: "Request-length-aware load-balancing proxy over data-parallel servers.")

    func run() async throws {
        throw ValidationError("pagoda proxy is not built yet")
    }
}
