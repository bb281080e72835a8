import NIOCore
import NIOHTTP1
import NIOPosix

/// The idle keep-alive connections to every backend that belong to one event loop.
///
/// A client connection and the backend connections it uses live on the same event loop, so a forwarded request
/// never changes thread: the proxy reads the request, writes it to the backend, reads the answer and writes it
/// back, all in callbacks of one loop. Hence no lock: every member is touched only on `eventLoop`.
/// Idle connections are reused last-in first-out (the warmest socket first); one that the backend closes while
/// idle leaves the pool at once (`remove`).
final class BackendConnectionPool {
    let eventLoop: EventLoop
    private let addresses: [BackendAddress]
    private let connectTimeout: TimeAmount
    /// Idle connections kept per backend; more are closed when they come back.
    private let maxIdlePerBackend: Int
    private var idle: [[BackendConnection]]

    init(eventLoop: EventLoop, addresses: [BackendAddress], connectTimeout: TimeAmount, maxIdlePerBackend: Int = 256) {
        self.eventLoop = eventLoop
        self.addresses = addresses
        self.connectTimeout = connectTimeout
        self.maxIdlePerBackend = maxIdlePerBackend
        self.idle = Array(repeating: [], count: addresses.count)
    }

    /// A connection to `backend` for one exchange: an idle one unless `fresh` (then `reused` is true), else a new
    /// one. `done` runs on `eventLoop`.
    func connection(
        to backend: Int, fresh: Bool, _ done: @escaping (Result<(connection: BackendConnection, reused: Bool), Error>) -> Void
    ) {
        if !fresh, let connection = idle[backend].popLast() {
            done(.success((connection, true)))
            return
        }
        let handler = BackendConnection(backend: backend, pool: self)
        let address = addresses[backend]
        ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .connect(host: address.host, port: address.port)
            .whenComplete { result in
                done(result.map { _ in (handler, false) })
            }
    }

    /// A connection whose exchange ended cleanly and that stays open.
    func giveBack(_ connection: BackendConnection) {
        guard !connection.isClosed else { return }
        if idle[connection.backend].count >= maxIdlePerBackend {
            connection.abandon()
        } else {
            idle[connection.backend].append(connection)
        }
    }

    /// A connection that closed (idle or not).
    func remove(_ connection: BackendConnection) {
        if let index = idle[connection.backend].lastIndex(where: { $0 === connection }) {
            idle[connection.backend].remove(at: index)
        }
    }
}
