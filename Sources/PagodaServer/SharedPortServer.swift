import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

extension APIServer {
    /// Serves `OpenAIRoutes` on a listening socket this process opens on host:port with SO_REUSEPORT, so the
    /// K API-server processes of `pagoda serve --api-server-count K` share one port and the kernel spreads
    /// new connections over them (as vLLM's API servers do). Hummingbird binds by address only, so the
    /// socket is opened here and handed to NIO; each connection runs Hummingbird's HTTP/1 channel and the
    /// same router as `run` (so the same admission: `--max-concurrent-requests`, 503 while draining).
    /// SIGTERM drains as `run` does (`serveUntilDrained`), then closes the socket and the connections and
    /// returns; SIGINT is left to the caller (the supervising `pagoda serve` handles Ctrl-C).
    public func runOnSharedPort(onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        let fd = try SharedPortSocket.listen(host: serving.config.host, port: serving.config.port)
        let responder = OpenAIRoutes.makeRouter(serving: serving).buildResponder()
        var httpLogger = Logger(label: "pagoda.http")
        httpLogger.logLevel = .critical
        let logger = httpLogger
        let http = HTTP1Channel(responder: { (request, responseWriter: consuming ResponseWriter, channel) in
            let context = ServerRequestContext(source: .init(channel: channel, logger: logger))
            var response: Response
            do {
                response = try await responder.respond(to: request, context: context)
            } catch {
                response = Response(status: .internalServerError)
            }
            response.headers[.server] = "pagoda"
            try await responseWriter.write(response: response.head, body: response.body)
        })
        let listening = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .bind(NIOBSDSocket.Handle(fd), serverBackPressureStrategy: nil) { channel in
                http.setup(channel: channel, logger: logger)
            }
        onListening(listening.channel.localAddress?.port ?? serving.config.port)
        try await serveUntilDrained(signals: [SIGTERM]) {
            // Cancelled once drained: the listener and every connection close, so the group ends.
            await withDiscardingTaskGroup { group in
                await withTaskCancellationHandler {
                    do {
                        try await listening.executeThenClose { inbound in
                            for try await connection in inbound {
                                group.addTask {
                                    await withTaskCancellationHandler {
                                        await http.handle(value: connection, logger: logger)
                                    } onCancel: {
                                        connection.channel.close(promise: nil)
                                    }
                                }
                            }
                        }
                    } catch {
                        if !Task.isCancelled { self.logger.error("shared-port listener ended: \(error)") }
                    }
                } onCancel: {
                    listening.channel.close(promise: nil)
                }
            }
        }
    }
}

/// The listening TCP socket of one of several API-server processes sharing a port (SO_REUSEPORT).
enum SharedPortSocket {
    /// A bound, listening, non-blocking IPv4 socket on host:port with SO_REUSEADDR and SO_REUSEPORT set.
    static func listen(host: String, port: Int) throws -> Int32 {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        let h = host == "localhost" ? "127.0.0.1" : host
        guard inet_pton(AF_INET, h, &addr.sin_addr) == 1 else {
            throw ServeStartupError("--api-server-count above 1 needs an IPv4 --host (got '\(host)')")
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ServeStartupError("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, 1024) == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw ServeStartupError("cannot listen on \(host):\(port) (SO_REUSEPORT): \(why)")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        return fd
    }
}
