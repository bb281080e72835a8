import Dispatch
import Foundation
import Hummingbird
import Logging

/// The HTTP API server: Hummingbird serving `OpenAIRoutes` on host:port until SIGINT/SIGTERM (with
/// `ServerConfig.shutdownTimeoutSeconds` of draining first) or until the calling task is cancelled.
/// `runOnSharedPort` (SharedPortServer.swift) serves the same routes on a SO_REUSEPORT socket, with the
/// same drain on SIGTERM.
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
        guard shutdownOnSignals else {
            try await app.runService(gracefulShutdownSignals: [])
            return
        }
        try await serveUntilDrained(signals: [SIGTERM, SIGINT]) { try await app.runService(gracefulShutdownSignals: []) }
    }

    /// Runs `serve` until the first of `signals` arrives, then drains (`drain(after:)`), cancels `serve` and
    /// returns; a later signal aborts what is still in flight. The single server (`run`) and each API server
    /// of `--api-server-count K` (`runOnSharedPort`) shut down through it. `serve` must end when cancelled.
    func serveUntilDrained(signals: [Int32], _ serve: @escaping @Sendable () async throws -> Void) async throws {
        let admission = serving.admission, logger = self.logger
        let (signalled, first) = AsyncStream<Int32>.makeStream()
        let handlers = ShutdownSignals(
            signals,
            onFirst: { sig in
                first.yield(sig); first.finish()
            },
            onLater: { _ in
                logger.notice("second signal: aborting the requests in flight now")
                admission.abortAll()
            })
        defer { handlers.cancel(); first.finish() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await serve() }
            group.addTask { [self] in
                for await sig in signalled {
                    await drain(after: sig)
                    throw ShutdownComplete()
                }
            }
            do {
                try await group.next()
            } catch is ShutdownComplete {}
            group.cancelAll()
        }
    }

    /// vLLM's drain shutdown: refuse new requests (503, `/health` too), let those in flight finish for up to
    /// `shutdownTimeoutSeconds` (a second signal cuts it short), then end what is left with an error.
    private func drain(after signal: Int32) async {
        let admission = serving.admission
        admission.startDraining()
        let timeout = serving.config.shutdownTimeoutSeconds
        let name = signal == SIGTERM ? "SIGTERM" : "SIGINT"
        var left = admission.inFlight
        if timeout > 0 && left > 0 {
            logger.notice(
                "\(name): draining \(left) request(s) in flight for up to \(timeout) s (new requests get 503; a second signal stops at once)"
            )
            left = await admission.waitForDrain(timeout: timeout)
        } else {
            logger.notice("\(name): shutting down")
        }
        if left > 0 {
            logger.warning("aborting \(left) request(s) still in flight (--shutdown-timeout \(timeout) s)")
            admission.abortAll()
        }
        _ = await admission.waitForDrain(timeout: 5)  // the aborted requests' error answers go out
    }
}

/// Thrown by the signal task to end the server's task group.
private struct ShutdownComplete: Error {}

/// Shutdown signals (SIGTERM, SIGINT) delivered on a dispatch queue instead of the default handler (which
/// would end the process): the first to `onFirst`, every later one to `onLater`.
private final class ShutdownSignals: @unchecked Sendable {
    private let signals: [Int32]
    private var sources: [DispatchSourceSignal] = []
    private let lock = NSLock()
    private var seen = 0

    init(_ signals: [Int32], onFirst: @escaping @Sendable (Int32) -> Void, onLater: @escaping @Sendable (Int32) -> Void) {
        self.signals = signals
        let queue = DispatchQueue(label: "pagoda.signals")
        for sig in signals {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler { [self] in
                lock.lock()
                seen += 1
                let isFirst = seen == 1
                lock.unlock()
                if isFirst { onFirst(sig) } else { onLater(sig) }
            }
            source.resume()
            sources.append(source)
        }
    }

    func cancel() {
        for s in sources { s.cancel() }
        for sig in signals { signal(sig, SIG_DFL) }
    }
}
