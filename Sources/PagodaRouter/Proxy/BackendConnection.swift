import NIOCore
import NIOHTTP1

/// What a backend answer delivers, in order, on the event loop of the connection that carries it:
/// `backendHead`, any number of `backendBody` (each followed eventually by `backendReadComplete`), then
/// exactly one of `backendEnd` or `backendFailed`. Nothing arrives after either of those.
protocol BackendResponseObserver: AnyObject {
    func backendHead(_ head: HTTPResponseHead)
    func backendBody(_ buffer: ByteBuffer)
    /// The socket read that delivered the preceding body parts is done: a good moment to flush.
    func backendReadComplete()
    func backendEnd()
    /// The connection broke (or was closed) before the answer ended; `description` says how.
    func backendFailed(_ description: String)
}

/// One keep-alive HTTP/1.1 client connection to a backend, the last handler of its channel's pipeline.
///
/// It carries one exchange at a time: `send` writes a request and sets the observer; the answer's parts go to
/// that observer; at the answer's end the connection goes back to its pool (or is closed when either side
/// said `Connection: close`). Every member is touched only on the channel's event loop.
final class BackendConnection: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    let backend: Int
    private unowned let pool: BackendConnectionPool
    private var channel: Channel?
    private var observer: BackendResponseObserver?
    private var keepAlive = true
    /// Why the connection closed, for the observer: the error caught, or the reason given to `close(reporting:)`.
    private var closeReason: String?
    private(set) var isClosed = false
    private var readingPaused = false

    init(backend: Int, pool: BackendConnectionPool) {
        self.backend = backend
        self.pool = pool
    }

    /// Writes one request (head, optional body, end) and routes its answer to `observer`.
    func send(_ head: HTTPRequestHead, body: ByteBuffer?, to observer: BackendResponseObserver) {
        guard let channel, !isClosed else {
            pool.eventLoop.execute { observer.backendFailed("the connection was already closed") }
            return
        }
        self.observer = observer
        keepAlive = head.isKeepAlive
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if let body, body.readableBytes > 0 {
            channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil)
        }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    }

    /// Drops the exchange in progress without telling its observer and closes the connection
    /// (the backend sees the disconnect and stops working on the request).
    func abandon() {
        observer = nil
        channel?.close(promise: nil)
    }

    /// Closes the connection; the exchange in progress learns it failed, for `reason`.
    func close(reporting reason: String) {
        closeReason = reason
        channel?.close(promise: nil)
    }

    /// Stops or resumes reading from the backend (back-pressure from a slow client).
    func setReading(_ on: Bool) {
        guard on == readingPaused, let channel else { return }
        readingPaused = !on
        _ = channel.setOption(ChannelOptions.autoRead, value: on)
    }

    // MARK: ChannelInboundHandler

    func handlerAdded(context: ChannelHandlerContext) {
        channel = context.channel
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard let observer else {
                context.close(promise: nil)  // an answer nobody asked for: the connection is not trustworthy
                return
            }
            if !head.isKeepAlive { keepAlive = false }
            observer.backendHead(head)
        case .body(let buffer):
            observer?.backendBody(buffer)
        case .end:
            guard let observer else { return }
            self.observer = nil
            setReading(true)  // the answer may have ended in the same read as a pause: the next one must be read
            if keepAlive && context.channel.isActive {
                pool.giveBack(self)
            } else {
                context.close(promise: nil)
            }
            observer.backendEnd()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        observer?.backendReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if closeReason == nil { closeReason = "\(error)" }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        isClosed = true
        pool.remove(self)
        if let observer {
            self.observer = nil
            observer.backendFailed(closeReason ?? "the backend closed the connection")
        }
        context.fireChannelInactive()
    }
}
