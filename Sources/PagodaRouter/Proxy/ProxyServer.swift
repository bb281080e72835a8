import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1

/// `pagoda proxy`: one OpenAI endpoint in front of data-parallel servers (Hummingbird in front,
/// AsyncHTTPClient to the backends), balancing by request cost with health checks and fail-over.
///
/// Routes: `POST /v1/completions`, `POST /v1/chat/completions` (forwarded), `GET /v1/models` (from any
/// healthy backend), `GET /health` and `/healthcheck` (200 while a backend is healthy, else 503),
/// `GET /metrics` (Prometheus text).
public struct ProxyServer: Sendable {
    public let configuration: ProxyConfiguration
    let logger: Logger

    public init(configuration: ProxyConfiguration, logger: Logger = Logger(label: "pagoda.proxy")) {
        self.configuration = configuration
        self.logger = logger
    }

    public func run(onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        try configuration.validate()
        let balancer = LoadBalancer(
            backends: configuration.backends, policy: configuration.policy, affinity: configuration.affinity,
            prefixIndex: PrefixIndex(blockSize: configuration.prefixBlockSize),
            health: BackendHealth(unhealthyAfter: configuration.unhealthyAfterFailedProbes))
        let shared = SharedBalancer(balancer)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration())
        let prober = HealthProber(
            client: client, shared: shared, interval: configuration.healthCheckInterval,
            timeout: configuration.healthCheckTimeout, logger: logger)
        let forwarder = CompletionForwarder(client: client, shared: shared, configuration: configuration, logger: logger)

        let router = Router()
        router.post("/v1/completions") { request, _ in
            try await forwarder.forward(request, path: "/v1/completions", isChat: false)
        }
        router.post("/v1/chat/completions") { request, _ in
            try await forwarder.forward(request, path: "/v1/chat/completions", isChat: true)
        }
        router.get("/v1/models") { request, _ in
            await models(request, client: client, shared: shared)
        }
        router.get("/health") { _, _ in health(shared) }
        router.get("/healthcheck") { _, _ in health(shared) }
        router.get("/metrics") { _, _ in
            let text = shared.withLock { ProxyMetrics.render($0) }
            var headers = HTTPFields()
            headers[.contentType] = ProxyMetrics.contentType
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
        }

        let backendList = configuration.backends.map(\.description).joined(separator: ", ")
        let policy = configuration.policy.rawValue
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "pagoda-proxy"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                print("pagoda proxy listening on \(configuration.host):\(port), policy \(policy), backends: \(backendList)")
                fflush(stdout)
                onListening(port)
            },
            logger: logger)

        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await prober.run() }
                try await app.runService()
                group.cancelAll()
            }
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }

    private func clientConfiguration() -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.httpVersion = .http1Only
        configuration.decompression = .disabled
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: .milliseconds(Int64(self.configuration.connectTimeout * 1000)))
        // Pooled keep-alive connections to each backend, one per request in flight.
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 1024
        // A refused connection must fail at once so the request can go to another backend.
        configuration.connectionPool.retryConnectionEstablishment = false
        return configuration
    }

    private func health(_ shared: SharedBalancer) -> Response {
        let (healthy, total) = shared.withLock { ($0.healthyCount, $0.backends.count) }
        let body = #"{"status":"\#(healthy > 0 ? "ok" : "unavailable")","dp_instances":\#(total),"healthy_instances":\#(healthy)}"#
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: healthy > 0 ? .ok : .serviceUnavailable, headers: headers,
                        body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// `GET /v1/models` from a healthy backend (another one if it fails).
    private func models(_ request: Request, client: HTTPClient, shared: SharedBalancer) async -> Response {
        let requestID = request.headers.requestID ?? "proxy-" + UUID().uuidString
        var excluded = Set<Int>()
        while let index = shared.withLock({ $0.pickForAuxiliary(excluding: excluded) }) {
            excluded.insert(index)
            let backend = shared.addresses[index]
            var outbound = HTTPClientRequest(url: backend.baseURL + "/v1/models")
            outbound.headers.add(name: "X-Request-Id", value: requestID)
            if let authorization = request.headers[.authorization] {
                outbound.headers.add(name: "Authorization", value: authorization)
            }
            do {
                let response = try await client.execute(outbound, timeout: .seconds(30))
                let body = try await response.body.collect(upTo: configuration.maxBodyBytes)
                if response.status.code >= 500 { continue }
                var headers = HTTPFields()
                headers[.contentType] = response.headers.first(name: "content-type") ?? "application/json"
                headers.requestID = requestID
                return Response(status: .init(code: Int(response.status.code)), headers: headers, body: .init(byteBuffer: body))
            } catch {
                _ = shared.withLock { $0.connectionFailed(backend: index, error: "\(error)") }
            }
        }
        return ProxyErrorBody.response(
            status: 503, type: "ServiceUnavailableError", message: "no healthy backend could list the models",
            requestID: requestID)
    }
}
