import Hummingbird
import NIOCore

/// Hummingbird's basic request context plus the client's connection, so that a handler computing a
/// non-streamed answer can notice that its client has gone and stop the work (streamed answers
/// notice it when a write fails).
public struct ServerRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The connection the request arrived on.
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// Runs `body`, cancelling it when the client closes its connection before it ends (checked every
    /// 100 ms; a callback on `closeFuture` per request would pile up on a long-lived keep-alive
    /// connection). A non-streamed completion whose client left is thereby aborted in the engine, its KV
    /// blocks freed.
    func cancellingOnDisconnect<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let channel = self.channel
        let observer = try await ClientDisconnectObserver.installed(on: channel)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                while try await !channel.eventLoop.submit({ observer.clientLeft(channel) }).get() {
                    try await Task.sleep(nanoseconds: 100_000_000)
                }
                return nil
            }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let result { return result }
                throw CancellationError()  // the client left: nobody is there to answer
            }
            throw CancellationError()
        }
    }
}

/// Notices the end of a client's input. Hummingbird allows remote half-closure, so a client that closes
/// its socket leaves the connection "active" with its input closed; an HTTP/1.1 client never half-closes
/// while it waits for an answer, so that event means it has gone (as uvicorn reads it for vLLM). One per
/// connection, first in its pipeline, passing every event on; touched only on the channel's event loop.
final class ClientDisconnectObserver: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private var inputClosed = false

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed { inputClosed = true }
        context.fireUserInboundEventTriggered(event)
    }

    /// On the event loop: whether the client has closed its side or the connection is gone.
    func clientLeft(_ channel: any Channel) -> Bool { inputClosed || !channel.isActive }

    /// The connection's observer, added on its first use.
    static func installed(on channel: any Channel) async throws -> ClientDisconnectObserver {
        try await channel.eventLoop.submit {
            let pipeline = channel.pipeline.syncOperations
            if let existing = try? pipeline.handler(type: ClientDisconnectObserver.self) { return existing }
            let observer = ClientDisconnectObserver()
            try pipeline.addHandler(observer, position: .first)
            return observer
        }.get()
    }
}
