import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// `pagoda proxy`: one OpenAI endpoint in front of data-parallel servers, balancing by request cost with
/// health checks and fail-over.
///
/// A SwiftNIO HTTP/1.1 server whose connections forward on their own event loop over pooled keep-alive
/// connections to the backends (`ProxyConnectionHandler`, `CompletionForwarder`, `BackendConnectionPool`): no
/// thread hop per request, which is what keeps the added latency well under a millisecond. Health probes run
/// apart, with AsyncHTTPClient. Routes: see `ProxyConnectionHandler`.
public struct ProxyServer: Sendable {
    public let configuration: ProxyConfiguration
    let logger: Logger

    public init(configuration: ProxyConfiguration, logger: Logger = Logger(label: "pagoda.proxy")) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Serves until the task is cancelled (or the listening socket closes); `onListening` gets the bound port.
    public func run(onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        try configuration.validate()
        let balancer = LoadBalancer(
            backends: configuration.backends, policy: configuration.policy, affinity: configuration.affinity,
            prefixIndex: PrefixIndex(blockSize: configuration.prefixBlockSize),
            health: BackendHealth(unhealthyAfter: configuration.unhealthyAfterFailedProbes))
        let shared = SharedBalancer(balancer)
        let group = MultiThreadedEventLoopGroup.singleton
        let proxy = ProxyContext(group: group, shared: shared, configuration: configuration, logger: logger)

        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withPipeliningAssistance: true, withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(
                        ProxyConnectionHandler(proxy: proxy, pool: proxy.pool(for: channel.eventLoop)))
                }
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()

        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: probeClientConfiguration())
        let prober = HealthProber(
            client: client, shared: shared, interval: configuration.healthCheckInterval,
            timeout: configuration.healthCheckTimeout, logger: logger)
        let port = channel.localAddress?.port ?? 0
        let backendList = configuration.backends.map(\.description).joined(separator: ", ")
        print("pagoda proxy listening on \(configuration.host):\(port), policy \(configuration.policy.rawValue), backends: \(backendList)")
        fflush(stdout)
        onListening(port)

        // SIGINT / SIGTERM: stop listening and return (a clean exit), as a cancellation does.
        let signalSources = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [logger] in
                logger.notice("pagoda proxy: signal \(number), stopping")
                channel.close(promise: nil)
            }
            source.resume()
            return source
        }
        defer { signalSources.forEach { $0.cancel() } }

        do {
            try await withTaskCancellationHandler {
                try await withThrowingTaskGroup(of: Void.self) { tasks in
                    tasks.addTask { await prober.run() }
                    try await channel.closeFuture.get()
                    tasks.cancelAll()
                }
            } onCancel: {
                channel.close(promise: nil)
            }
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }

    private func probeClientConfiguration() -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.httpVersion = .http1Only
        configuration.decompression = .disabled
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: .milliseconds(Int64(self.configuration.connectTimeout * 1000)))
        // A refused connection must fail at once so the backend is reported down by this probe.
        configuration.connectionPool.retryConnectionEstablishment = false
        return configuration
    }
}
