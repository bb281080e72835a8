import NIOCore
import NIOHTTP1

/// Answers `GET /v1/models` from a healthy backend, in turn; a backend that is unreachable or answers 5xx is
/// passed over for the next one. Carries no load, so it takes no lease. Runs on the client's event loop.
final class ModelsForwarder: BackendResponseObserver, ClientExchange {
    private let client: ProxyConnectionHandler
    private let proxy: ProxyContext
    private let pool: BackendConnectionPool
    private let requestID: String
    private let authorization: String?
    private var excluded = Set<Int>()
    private var backend = 0
    private var connection: BackendConnection?
    private var reusedConnection = false
    private var head: HTTPResponseHead?
    private var collected = ByteBuffer()
    private var finished = false
    private var timeout: Scheduled<Void>?

    init(client: ProxyConnectionHandler, proxy: ProxyContext, pool: BackendConnectionPool, requestID: String,
         authorization: String?) {
        self.client = client
        self.proxy = proxy
        self.pool = pool
        self.requestID = requestID
        self.authorization = authorization
    }

    func start() {
        timeout = pool.eventLoop.scheduleTask(in: .seconds(30)) { [weak self] in
            self?.connection?.close(reporting: "no answer within 30 s")
        }
        next()
    }

    private func next() {
        guard let index = proxy.shared.withLock({ $0.pickForAuxiliary(excluding: excluded) }) else {
            done()
            client.respondError(status: 503, type: "ServiceUnavailableError",
                                message: "no healthy backend could list the models", requestID: requestID)
            return
        }
        excluded.insert(index)
        backend = index
        send(fresh: false)
    }

    private func send(fresh: Bool) {
        head = nil
        collected = ByteBuffer()
        pool.connection(to: backend, fresh: fresh) { [self] result in
            if finished {
                if case .success(let got) = result { pool.giveBack(got.connection) }
                return
            }
            switch result {
            case .failure(let error):
                _ = proxy.shared.withLock { $0.connectionFailed(backend: backend, error: "\(error)") }
                next()
            case .success(let got):
                connection = got.connection
                reusedConnection = got.reused
                let headers = proxy.backendHeaders(backend, requestID: requestID, authorization: authorization)
                got.connection.send(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/v1/models", headers: headers),
                                    body: nil, to: self)
            }
        }
    }

    private func done() {
        finished = true
        connection = nil
        timeout?.cancel()
    }

    func backendHead(_ head: HTTPResponseHead) { self.head = head }

    func backendBody(_ buffer: ByteBuffer) {
        var buffer = buffer
        if collected.readableBytes + buffer.readableBytes > proxy.configuration.maxBodyBytes {
            connection?.close(reporting: "answer larger than \(proxy.configuration.maxBodyBytes) bytes")
            return
        }
        collected.writeBuffer(&buffer)
    }

    func backendReadComplete() {}

    func backendEnd() {
        guard let head, head.status.code < 500 else {
            connection = nil
            next()
            return
        }
        done()
        client.respond(status: head.status, contentType: head.headers.first(name: "content-type") ?? "application/json",
                       requestID: requestID, body: collected)
    }

    func backendFailed(_ description: String) {
        connection = nil
        if head == nil && reusedConnection {
            reusedConnection = false
            send(fresh: true)
            return
        }
        _ = proxy.shared.withLock { $0.connectionFailed(backend: backend, error: description) }
        next()
    }

    func clientGone() {
        guard !finished else { return }
        connection?.abandon()
        done()
    }

    func clientWritabilityChanged(_ writable: Bool) {}
}
