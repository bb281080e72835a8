import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Thin blocking/non-blocking IPv4 TCP helpers for `TCPCommunicator` (rendezvous and the full mesh).
enum TCPSocket {
    struct Failure: Error { let detail: String }

    static func errnoText(_ what: String) -> String { "\(what): \(String(cString: strerror(errno)))" }

    static func address(host: String, port: Int) throws -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        let h = host == "localhost" ? "127.0.0.1" : host
        guard inet_pton(AF_INET, h, &addr.sin_addr) == 1 else { throw Failure(detail: "not an IPv4 address: \(host)") }
        return addr
    }

    /// A listening socket on host:port (port 0: any free port). Returns (fd, bound port).
    static func listen(host: String, port: Int, backlog: Int32 = 64) throws -> (Int32, Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(detail: errnoText("socket")) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = try address(host: host, port: port)
        let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard r == 0 else { let t = errnoText("bind \(host):\(port)"); close(fd); throw Failure(detail: t) }
        guard Glibc.listen(fd, backlog) == 0 else { let t = errnoText("listen"); close(fd); throw Failure(detail: t) }
        return (fd, localPort(fd))
    }

    static func localPort(_ fd: Int32) -> Int {
        var a = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: a.sin_port))
    }

    static func localAddress(_ fd: Int32) -> UInt32 {
        var a = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return a.sin_addr.s_addr
    }

    static func peerAddress(_ fd: Int32) -> UInt32 {
        var a = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &len) } }
        return a.sin_addr.s_addr
    }

    static func dottedQuad(_ networkOrder: UInt32) -> String {
        var a = in_addr(s_addr: networkOrder)
        var buf = [CChar](repeating: 0, count: 32)
        inet_ntop(AF_INET, &a, &buf, 32)
        return String(cString: buf)
    }

    /// Connects, retrying refused connections until `deadline` (the listener may not be up yet).
    static func connect(host: String, port: Int, deadline: Date) throws -> Int32 {
        var addr = try address(host: host, port: port)
        while true {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw Failure(detail: errnoText("socket")) }
            let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            if r == 0 { tune(fd); return fd }
            let e = errno
            close(fd)
            if Date() > deadline { throw Failure(detail: "connect \(host):\(port): \(String(cString: strerror(e)))") }
            usleep(2000)
        }
    }

    /// Accepts one connection, waiting at most until `deadline`.
    static func accept(_ listener: Int32, deadline: Date) throws -> Int32 {
        while true {
            var p = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            let ms = Int32(max(0, min(100, deadline.timeIntervalSinceNow * 1000)))
            if poll(&p, 1, ms) > 0 {
                let fd = Glibc.accept(listener, nil, nil)
                if fd >= 0 { tune(fd); return fd }
            }
            if Date() > deadline { throw Failure(detail: "no connection within the timeout") }
        }
    }

    /// TCP_NODELAY (decode messages are small) and 4 MiB socket buffers.
    static func tune(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var buf: Int32 = 4 << 20
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, socklen_t(MemoryLayout<Int32>.size))
    }

    static func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL, 0)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }

    /// Blocking exact write/read for the handshake (before sockets become non-blocking).
    static func writeAll(_ fd: Int32, _ bytes: [UInt32]) throws {
        try bytes.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let r = Glibc.send(fd, raw.baseAddress! + off, raw.count - off, Int32(MSG_NOSIGNAL))
                if r <= 0 { if r < 0 && errno == EINTR { continue }; throw Failure(detail: errnoText("send")) }
                off += r
            }
        }
    }

    static func readAll(_ fd: Int32, words: Int, deadline: Date) throws -> [UInt32] {
        var out = [UInt32](repeating: 0, count: words)
        try out.withUnsafeMutableBytes { raw in
            var off = 0
            while off < raw.count {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let ms = Int32(max(0, min(100, deadline.timeIntervalSinceNow * 1000)))
                if poll(&p, 1, ms) <= 0 {
                    if Date() > deadline { throw Failure(detail: "handshake timed out") }
                    continue
                }
                let r = Glibc.recv(fd, raw.baseAddress! + off, raw.count - off, 0)
                if r == 0 { throw Failure(detail: "connection closed during handshake") }
                if r < 0 { if errno == EINTR || errno == EAGAIN { continue }; throw Failure(detail: errnoText("recv")) }
                off += r
            }
        }
        return out
    }
}
