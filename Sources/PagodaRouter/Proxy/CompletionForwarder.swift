import Logging
import NIOCore
import NIOHTTP1

/// Forwards one completion request: route it, send it, retry it elsewhere while nothing has reached the
/// client, then pass the answer through (streamed chunk by chunk, or whole), releasing its lease once.
///
/// Runs entirely on the client connection's event loop, with backend connections from that loop's pool, so a
/// request costs no thread hop. The path of a request:
/// 1. parse only what routing needs from the body (`RequestSummary`), compute its cost;
/// 2. `acquire` a lease on a backend; POST the unchanged body bytes there with `X-Request-Id`;
/// 3. before the first byte goes to the client — connection refused, lost before the answer ended (plain) or
///    before its first chunk (stream), an empty 2xx body, 502/503/504 — give the lease back as a backend failure
///    and try another backend (a reused keep-alive connection that the backend had closed is first retried once
///    on a new connection to the same backend, as that is no failure of the backend);
/// 4. stream: the first chunk is read before the response head is sent, then chunks pass through as they come
///    (reading from the backend pauses while the client cannot take more); a backend failure after that ends the
///    stream with an SSE error event;
/// 5. the lease is released when the answer ends, fails, or the client goes; a client that goes also closes the
///    backend connection, so the backend stops working on the request (streamed or not).
final class CompletionForwarder: BackendResponseObserver, ClientExchange {
    private enum Phase {
        case connecting
        case awaitingHead
        /// A plain answer, collected whole so a broken one can still be retried.
        case collecting(status: HTTPResponseStatus, contentType: String, body: ByteBuffer)
        /// A streamed answer whose head waits for its first chunk.
        case awaitingFirstChunk(status: HTTPResponseStatus, contentType: String)
        case streaming
        case finished
    }

    private let client: ForwarderClient
    private let proxy: ProxyContext
    private let pool: BackendConnectionPool
    private let path: String
    private let isChat: Bool
    private let body: ByteBuffer
    private let requestID: String
    private let authorization: String?
    private var summary = RequestSummary(promptText: "")
    private var route = LoadBalancer.RouteRequest(cost: 0)

    private var phase = Phase.connecting
    private var token: LeaseToken?
    private var connection: BackendConnection?
    private var reusedConnection = false
    private var excluded = Set<Int>()
    private var failures: [String] = []
    private var attempts = 0
    private var timeout: Scheduled<Void>?

    init(client: ForwarderClient, proxy: ProxyContext, pool: BackendConnectionPool, path: String, isChat: Bool,
         body: ByteBuffer, requestID: String, authorization: String?) {
        self.client = client
        self.proxy = proxy
        self.pool = pool
        self.path = path
        self.isChat = isChat
        self.body = body
        self.requestID = requestID
        self.authorization = authorization
    }

    func start() {
        do {
            summary = try RequestSummary(json: Array(body.readableBytesView), isChat: isChat)
        } catch let error as RequestSummary.ParseError {
            phase = .finished
            client.respondError(status: 400, type: "BadRequestError", message: error.message, param: error.param,
                                requestID: requestID)
            return
        } catch {
            phase = .finished
            client.respondError(status: 400, type: "BadRequestError", message: "\(error)", requestID: requestID)
            return
        }
        let configuration = proxy.configuration
        route = LoadBalancer.RouteRequest(cost: configuration.cost.cost(summary))
        if configuration.policy == .cacheAware {
            let index = PrefixIndex(blockSize: configuration.prefixBlockSize, capacity: 2)
            route.prefixKeys = summary.promptTokenIds.map { index.blockKeys($0) } ?? index.blockKeys(summary.promptText.utf8)
        }
        nextAttempt()
    }

    // MARK: Attempts

    private func nextAttempt() {
        guard attempts < proxy.configuration.maxAttempts,
              let lease = proxy.shared.withLock({ $0.acquire(route, excluding: excluded) })
        else {
            phase = .finished
            let detail = failures.isEmpty ? "" : " (" + failures.joined(separator: "; ") + ")"
            client.respondError(status: 503, type: "ServiceUnavailableError",
                                message: "no healthy backend could take the request" + detail, requestID: requestID)
            return
        }
        attempts += 1
        token = LeaseToken(lease, proxy.shared)
        timeout?.cancel()
        timeout = pool.eventLoop.scheduleTask(in: .nanoseconds(Int64(proxy.configuration.requestTimeout * 1e9))) { [weak self] in
            self?.timedOut()
        }
        send(to: lease.backend, fresh: false)
    }

    private func send(to backend: Int, fresh: Bool) {
        phase = .connecting
        pool.connection(to: backend, fresh: fresh) { [self] result in
            guard case .connecting = phase else {
                // The client went (or the request timed out) while connecting: keep the connection for others.
                if case .success(let got) = result { pool.giveBack(got.connection) }
                return
            }
            switch result {
            case .failure(let error):
                attemptFailed("backend \(backendAddress) failed before answering: \(error)", unreachable: true)
            case .success(let got):
                connection = got.connection
                reusedConnection = got.reused
                phase = .awaitingHead
                got.connection.send(requestHead(backend), body: body, to: self)
            }
        }
    }

    private func requestHead(_ backend: Int) -> HTTPRequestHead {
        var headers = proxy.backendHeaders(backend, requestID: requestID, authorization: authorization)
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(body.readableBytes))
        return HTTPRequestHead(version: .http1_1, method: .POST, uri: path, headers: headers)
    }

    private var backendAddress: BackendAddress { proxy.shared.addresses[token?.lease.backend ?? 0] }

    /// The attempt failed before any byte reached the client: release it as a backend failure, try elsewhere.
    private func attemptFailed(_ reason: String, unreachable: Bool) {
        guard let token else { return }
        let backend = token.lease.backend
        connection = nil
        if unreachable, proxy.shared.withLock({ $0.connectionFailed(backend: backend, error: reason) }) == .unhealthy {
            proxy.logger.error("backend \(proxy.shared.addresses[backend]) is unhealthy: \(reason)")
        }
        token.release(.backendFailed)
        self.token = nil
        excluded.insert(backend)
        failures.append(reason)
        proxy.logger.warning("request \(requestID): \(reason); retrying on another backend")
        nextAttempt()
    }

    /// The request is over: release its lease with `outcome`, stop the timer.
    private func finish(_ outcome: LoadBalancer.Outcome) {
        phase = .finished
        connection = nil
        timeout?.cancel()
        timeout = nil
        token?.release(outcome)
        token = nil
    }

    private func timedOut() {
        guard let connection else { return }
        reusedConnection = false  // a timeout is the backend's failure, never a stale keep-alive connection
        // Closing makes the connection report a failure, handled like any other by the phase we are in.
        connection.close(reporting: "no complete answer within \(proxy.configuration.requestTimeout) s")
    }

    // MARK: BackendResponseObserver

    func backendHead(_ head: HTTPResponseHead) {
        guard case .awaitingHead = phase else { return }
        let code = head.status.code
        if code == 502 || code == 503 || code == 504 {
            connection?.abandon()
            attemptFailed("backend \(backendAddress) answered HTTP \(code)", unreachable: false)
            return
        }
        let contentType = head.headers.first(name: "content-type") ?? "application/json"
        if summary.stream && contentType.hasPrefix("text/event-stream") {
            phase = .awaitingFirstChunk(status: head.status, contentType: contentType)
        } else {
            phase = .collecting(status: head.status, contentType: contentType, body: ByteBuffer())
        }
    }

    func backendBody(_ buffer: ByteBuffer) {
        switch phase {
        case .collecting(let status, let contentType, var collected):
            if collected.readableBytes + buffer.readableBytes > proxy.configuration.maxBodyBytes {
                connection?.abandon()
                attemptFailed("backend \(backendAddress) answered more than \(proxy.configuration.maxBodyBytes) bytes",
                              unreachable: false)
                return
            }
            phase = .finished  // drop the reference while appending, so the buffer is not copied
            if collected.readableBytes == 0 {
                collected = buffer
            } else {
                var more = buffer
                collected.writeBuffer(&more)
            }
            phase = .collecting(status: status, contentType: contentType, body: collected)
        case .awaitingFirstChunk(let status, let contentType):
            phase = .streaming
            client.startStream(status: status, contentType: contentType, requestID: requestID)
            client.streamChunk(buffer)
            if !client.isWritable { connection?.setReading(false) }
        case .streaming:
            client.streamChunk(buffer)
            if !client.isWritable { connection?.setReading(false) }
        case .connecting, .awaitingHead, .finished:
            break
        }
    }

    func backendReadComplete() {
        if case .streaming = phase { client.flush() }
    }

    func backendEnd() {
        switch phase {
        case .collecting(let status, let contentType, let collected):
            if collected.readableBytes == 0 && status.code < 300 {
                attemptFailed("backend \(backendAddress) sent an empty HTTP \(status.code) answer", unreachable: false)
                return
            }
            finish(status.code >= 500 ? .backendFailed : .completed)
            client.respond(status: status, contentType: contentType, requestID: requestID, body: collected)
        case .awaitingFirstChunk:
            attemptFailed("backend \(backendAddress) ended the stream before any byte", unreachable: false)
        case .streaming:
            finish(.completed)
            client.endStream()
        case .connecting, .awaitingHead, .finished:
            break
        }
    }

    func backendFailed(_ description: String) {
        switch phase {
        case .awaitingHead where reusedConnection:
            // A kept-alive connection the backend had closed meanwhile: not the backend's fault, try a new one.
            reusedConnection = false
            if let backend = token?.lease.backend { send(to: backend, fresh: true) }
        case .awaitingHead, .collecting, .awaitingFirstChunk:
            attemptFailed("backend \(backendAddress) failed before answering: \(description)", unreachable: true)
        case .streaming:
            // Bytes already reached the client: no retry. Say so in-band, never end silently.
            // One broken stream does not take the backend out of rotation; the probes decide that.
            let backend = backendAddress
            finish(.backendFailed)
            proxy.logger.error("request \(requestID): backend \(backend) failed mid-stream: \(description)")
            var event = ByteBuffer()
            event.writeBytes(ProxyErrorBody.sseEvent(
                status: 502, type: "BadGatewayError",
                message: "backend \(backend) failed after the stream started (request \(requestID)): \(description)"))
            client.streamChunk(event)
            client.endStream()
        case .connecting, .finished:
            break
        }
    }

    // MARK: ClientExchange

    func clientGone() {
        if case .finished = phase { return }
        connection?.abandon()
        finish(.abandoned)
    }

    func clientWritabilityChanged(_ writable: Bool) {
        if case .streaming = phase { connection?.setReading(writable) }
    }
}
