import Foundation
import NIOCore
import NIOHTTP1

/// A request being answered by a forwarder, told when its client goes away or can take more bytes.
protocol ClientExchange: AnyObject {
    func clientGone()
    func clientWritabilityChanged(_ writable: Bool)
}

/// One client connection to the proxy: reads each HTTP/1.1 request (NIO's pipelining handler before it hands
/// over one request at a time), answers the local routes itself, and hands completions and `/v1/models` to a
/// forwarder that runs on this connection's event loop. Also the forwarder's way back to the client.
///
/// Routes: `POST /v1/completions`, `POST /v1/chat/completions` (forwarded), `GET /v1/models` (from any healthy
/// backend), `GET /health` and `/healthcheck` (200 while a backend is healthy, else 503), `GET /metrics`.
final class ProxyConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let proxy: ProxyContext
    private let pool: BackendConnectionPool
    private var context: ChannelHandlerContext?
    private var head: HTTPRequestHead?
    private var body: ByteBuffer?
    private var bodyTooLarge = false
    private var keepAlive = true
    /// An HTTP/1.0 client cannot take chunked bodies: its streams end when the connection closes.
    private var isHTTP10 = false
    private var exchange: ClientExchange?
    private(set) var isClosed = false
    /// `pagoda disagg-proxy`: the prefill servers; `proxy` then holds the decode servers.
    private let prefill: (context: ProxyContext, pool: BackendConnectionPool)?

    init(proxy: ProxyContext, pool: BackendConnectionPool, prefill: (context: ProxyContext, pool: BackendConnectionPool)? = nil) {
        self.proxy = proxy
        self.pool = pool
        self.prefill = prefill
    }

    // MARK: Reading requests

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = nil
            bodyTooLarge = false
            if head.headers[canonicalForm: "expect"].contains(where: { $0.lowercased() == "100-continue" }) {
                // curl asks before sending a body over 1 KiB; without this it waits a second.
                context.writeAndFlush(
                    wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
        case .body(var buffer):
            guard !bodyTooLarge else { return }
            if (body?.readableBytes ?? 0) + buffer.readableBytes > proxy.configuration.maxBodyBytes {
                bodyTooLarge = true
                body = nil
            } else if body == nil {
                body = buffer
            } else {
                body!.writeBuffer(&buffer)
            }
        case .end:
            guard let head else { return }
            self.head = nil
            keepAlive = head.isKeepAlive
            isHTTP10 = head.version == .http1_0
            dispatch(head, body: body ?? ByteBuffer())
            body = nil
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        isClosed = true
        let gone = exchange
        exchange = nil
        gone?.clientGone()
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        exchange?.clientWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    private func dispatch(_ head: HTTPRequestHead, body: ByteBuffer) {
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        let requestID = head.headers.first(name: "x-request-id") ?? proxy.makeRequestID()
        switch (head.method, path) {
        case (.POST, "/v1/completions"), (.POST, "/v1/chat/completions"):
            if bodyTooLarge {
                respondError(
                    status: 413, type: "BadRequestError",
                    message: "request body is larger than \(proxy.configuration.maxBodyBytes) bytes", requestID: requestID)
                return
            }
            if let prefill {
                let forwarder = DisaggForwarder(
                    client: self, prefill: prefill.context, decode: proxy, prefillPool: prefill.pool, decodePool: pool, path: path,
                    body: body, requestID: requestID, authorization: head.headers.first(name: "authorization"))
                exchange = forwarder
                forwarder.start()
                return
            }
            let forwarder = CompletionForwarder(
                client: self, proxy: proxy, pool: pool, path: path, isChat: path == "/v1/chat/completions",
                body: body, requestID: requestID, authorization: head.headers.first(name: "authorization"))
            exchange = forwarder
            forwarder.start()
        case (.GET, "/v1/models"):
            let forwarder = ModelsForwarder(
                client: self, proxy: proxy, pool: pool, requestID: requestID,
                authorization: head.headers.first(name: "authorization"))
            exchange = forwarder
            forwarder.start()
        case (.GET, "/health") where prefill != nil, (.GET, "/healthcheck") where prefill != nil:
            let (text, ok) = DisaggStatus.health(prefill: prefill!.context.shared, decode: proxy.shared)
            respond(status: ok ? .ok : .serviceUnavailable, contentType: "application/json", body: ByteBuffer(string: text))
        case (.GET, "/metrics") where prefill != nil:
            let text = DisaggStatus.metrics(prefill: prefill!.context.shared, decode: proxy.shared)
            respond(status: .ok, contentType: ProxyMetrics.contentType, body: ByteBuffer(string: text))
        case (.GET, "/health"), (.GET, "/healthcheck"):
            let (healthy, total) = proxy.shared.withLock { ($0.healthyCount, $0.backends.count) }
            let text = #"{"status":"\#(healthy > 0 ? "ok" : "unavailable")","dp_instances":\#(total),"healthy_instances":\#(healthy)}"#
            respond(status: healthy > 0 ? .ok : .serviceUnavailable, contentType: "application/json", body: ByteBuffer(string: text))
        case (.GET, "/metrics"):
            let text = proxy.shared.withLock { ProxyMetrics.render($0) }
            respond(status: .ok, contentType: ProxyMetrics.contentType, body: ByteBuffer(string: text))
        case (_, "/v1/completions"), (_, "/v1/chat/completions"), (_, "/v1/models"), (_, "/health"), (_, "/healthcheck"),
             (_, "/metrics"):
            respondError(status: 405, type: "MethodNotAllowedError",
                         message: "\(head.method) is not allowed on \(path)", requestID: requestID)
        default:
            respondError(status: 404, type: "NotFoundError", message: "no route for \(path)", requestID: requestID)
        }
    }

    // MARK: Answering (on the event loop; ignored once the client is gone)

    /// A whole answer with its length. Ends the current exchange.
    func respond(status: HTTPResponseStatus, contentType: String, requestID: String? = nil, body: ByteBuffer) {
        exchange = nil
        guard let context, !isClosed else { return }
        var headers = HTTPHeaders()
        headers.reserveCapacity(4)
        headers.add(name: "content-type", value: contentType)
        headers.add(name: "content-length", value: String(body.readableBytes))
        if let requestID { headers.add(name: "x-request-id", value: requestID) }
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: isHTTP10 ? .http1_0 : .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        finishResponse(context)
    }

    func respondError(status: Int, type: String, message: String, param: String? = nil, requestID: String) {
        respond(status: HTTPResponseStatus(statusCode: status), contentType: "application/json", requestID: requestID,
                body: ByteBuffer(bytes: ProxyErrorBody.json(status: status, type: type, message: message, param: param)))
    }

    /// The head of a streamed (chunked) answer; `streamChunk`s follow, then `endStream`.
    func startStream(status: HTTPResponseStatus, contentType: String, requestID: String) {
        guard let context, !isClosed else { return }
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: contentType)
        headers.add(name: "cache-control", value: "no-cache")
        if isHTTP10 {
            keepAlive = false
        } else {
            headers.add(name: "transfer-encoding", value: "chunked")
        }
        headers.add(name: "x-request-id", value: requestID)
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: isHTTP10 ? .http1_0 : .http1_1, status: status, headers: headers))), promise: nil)
    }

    func streamChunk(_ buffer: ByteBuffer) {
        guard let context, !isClosed else { return }
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
    }

    func flush() {
        guard let context, !isClosed else { return }
        context.flush()
    }

    /// Ends a streamed answer. Ends the current exchange.
    func endStream() {
        exchange = nil
        guard let context, !isClosed else { return }
        finishResponse(context)
    }

    var isWritable: Bool { context?.channel.isWritable ?? false }

    private func finishResponse(_ context: ChannelHandlerContext) {
        if keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
        }
    }
}
