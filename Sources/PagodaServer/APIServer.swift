import Foundation
import Hummingbird
import Logging

/// The HTTP API server: Hummingbird serving `OpenAIRoutes` on host:port until SIGINT/SIGTERM or
/// until `stop()` (e.g. the engine core died).
public final class APIServer: @unchecked Sendable {
    public let serving: OpenAIServing
    let logger: Logger

    public init(serving: OpenAIServing, logger: Logger) {
        self.serving = serving; self.logger = logger
    }

    /// Runs until a shutdown signal (or until the calling task is cancelled); `onListening` gets
    /// the bound port.
    public func run(shutdownOnSignals: Bool = true, onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        let router = OpenAIRoutes.makeRouter(serving: serving)
        var hbLogger = Logger(label: "pagoda.http")
        hbLogger.logLevel = .critical  // bind errors are thrown; shutdown chatter is not news
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(serving.config.host, port: serving.config.port), serverName: "pagoda"),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? 0) },
            logger: hbLogger)
        try await app.runService(gracefulShutdownSignals: shutdownOnSignals ? [.sigterm, .sigint] : [])
    }
}
