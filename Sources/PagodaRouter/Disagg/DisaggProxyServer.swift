import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// `pagoda disagg-proxy`: one OpenAI endpoint in front of prefill servers and decode servers
/// (prefill/decode disaggregation). Each request goes to a prefill server, then to a decode server with
/// the returned `kv_transfer_params` (`DisaggForwarder`). The two groups are two `pagoda proxy`
/// balancers, with their own health probes, on the proxy's SwiftNIO server.
public struct DisaggProxyServer: Sendable {
    public let prefill: ProxyConfiguration
    /// The decode servers, and the listening address, timeouts and limits of the whole proxy.
    public let decode: ProxyConfiguration
    let logger: Logger

    public init(prefill: ProxyConfiguration, decode: ProxyConfiguration, logger: Logger = Logger(label: "pagoda.disagg-proxy")) {
        self.prefill = prefill
        self.decode = decode
        self.logger = logger
    }

    /// Serves until the task is cancelled or a signal stops it; `onListening` gets the bound port.
    public func run(onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        try prefill.validate()
        try decode.validate()
        func shared(_ c: ProxyConfiguration) -> SharedBalancer {
            SharedBalancer(
                LoadBalancer(
                    backends: c.backends, policy: c.policy, affinity: c.affinity, prefixIndex: PrefixIndex(blockSize: c.prefixBlockSize),
                    health: BackendHealth(unhealthyAfter: c.unhealthyAfterFailedProbes)))
        }
        let prefillShared = shared(prefill), decodeShared = shared(decode)
        let group = MultiThreadedEventLoopGroup.singleton
        let prefillContext = ProxyContext(group: group, shared: prefillShared, configuration: prefill, logger: logger)
        let decodeContext = ProxyContext(group: group, shared: decodeShared, configuration: decode, logger: logger)

        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withPipeliningAssistance: true, withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(
                        ProxyConnectionHandler(
                            proxy: decodeContext, pool: decodeContext.pool(for: channel.eventLoop),
                            prefill: (prefillContext, prefillContext.pool(for: channel.eventLoop))))
                }
            }
            .bind(host: decode.host, port: decode.port)
            .get()

        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.httpVersion = .http1Only
        clientConfiguration.redirectConfiguration = .disallow
        clientConfiguration.timeout = .init(connect: .milliseconds(Int64(decode.connectTimeout * 1000)))
        clientConfiguration.connectionPool.retryConnectionEstablishment = false
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
        let probers = [prefillShared, decodeShared].map {
            HealthProber(
                client: client, shared: $0, interval: decode.healthCheckInterval, timeout: decode.healthCheckTimeout,
                logger: logger)
        }
        let port = channel.localAddress?.port ?? 0
        print(
            "pagoda disagg-proxy listening on \(decode.host):\(port), policy \(decode.policy.rawValue), "
                + "prefill: \(prefill.backends.map(\.description).joined(separator: ", ")), "
                + "decode: \(decode.backends.map(\.description).joined(separator: ", "))")
        fflush(stdout)
        onListening(port)

        let signalSources = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [logger] in
                logger.notice("pagoda disagg-proxy: signal \(number), stopping")
                channel.close(promise: nil)
            }
            source.resume()
            return source
        }
        defer { signalSources.forEach { $0.cancel() } }
        do {
            try await withTaskCancellationHandler {
                try await withThrowingTaskGroup(of: Void.self) { tasks in
                    for p in probers { tasks.addTask { await p.run() } }
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
}
