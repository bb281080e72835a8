import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Blocking IPv4 TCP I/O with a deadline on every wait, for the KV transfer connections: a dead or
/// stalled peer ends in an error, never a hang.
enum KVTransferSocket {
    struct Failure: Error, CustomStringConvertible {
        let description: String
        /// The peer closed the connection before sending any byte of what was awaited.
        var closedAtStart = false
    }

    /// True for a peer that closed the connection where a new message would have begun (a reader letting
    /// an idle connection go).
    static func isClosedBeforeFirstByte(_ error: Error) -> Bool { (error as? Failure)?.closedAtStart ?? false }

    static func errnoText(_ what: String) -> String { "\(what): \(String(cString: strerror(errno)))" }

    static func address(host: String, port: Int) throws -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &addr.sin_addr) == 1 else {
            throw Failure(description: "not an IPv4 address: \(host)")
        }
        return addr
    }

    /// A listening socket on host:port (0: any free port). Returns (fd, bound port).
    static func listen(host: String, port: Int) throws -> (Int32, Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: errnoText("socket")) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = try address(host: host, port: port)
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard r == 0 else { let t = errnoText("bind \(host):\(port)"); close(fd); throw Failure(description: t) }
        guard Glibc.listen(fd, 64) == 0 else { let t = errnoText("listen"); close(fd); throw Failure(description: t) }
        var a = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return (fd, Int(UInt16(bigEndian: a.sin_port)))
    }

    /// Connects within `deadline` (non-blocking connect + poll); a refused connection fails at once.
    static func connect(host: String, port: Int, deadline: Date) throws -> Int32 {
        var addr = try address(host: host, port: port)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: errnoText("socket")) }
        let flags = fcntl(fd, F_GETFL, 0)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if r != 0 && errno != EINPROGRESS {
            let t = errnoText("connect \(host):\(port)"); close(fd); throw Failure(description: t)
        }
        if r != 0 {
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let ms = Int32(max(0, min(Double(Int32.max), deadline.timeIntervalSinceNow * 1000)))
            guard poll(&p, 1, ms) > 0 else {
                close(fd); throw Failure(description: "connect \(host):\(port): no answer within the timeout")
            }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            if err != 0 { close(fd); throw Failure(description: "connect \(host):\(port): \(String(cString: strerror(err)))") }
        }
        tune(fd)
        return fd
    }

    /// `ip:port` of the other end, for log lines.
    static func peerDescription(_ fd: Int32) -> String {
        var a = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &len) } }
        guard rc == 0 else { return "unknown peer" }
        var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        inet_ntop(AF_INET, &a.sin_addr, &text, socklen_t(text.count))
        return "\(String(cString: text)):\(UInt16(bigEndian: a.sin_port))"
    }

    /// 4 MiB socket buffers: a transfer streams whole layers.
    static func tune(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var buf: Int32 = 4 << 20
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Sends `count` bytes, waiting for room at most until `deadline`.
    static func send(_ fd: Int32, _ p: UnsafeRawPointer, _ count: Int, deadline: Date) throws {
        var off = 0
        while off < count {
            let r = Glibc.send(fd, p + off, count - off, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            if r > 0 { off += r; continue }
            if r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                try waitReady(fd, events: POLLOUT, deadline: deadline, what: "send")
                continue
            }
            throw Failure(description: errnoText("send"))
        }
    }

    /// Receives exactly `count` bytes by `deadline`; the peer closing first is an error.
    static func recv(_ fd: Int32, _ p: UnsafeMutableRawPointer, _ count: Int, deadline: Date) throws {
        var off = 0
        while off < count {
            let r = Glibc.recv(fd, p + off, count - off, Int32(MSG_DONTWAIT))
            if r > 0 { off += r; continue }
            if r == 0 {
                throw Failure(description: "the peer closed the connection after \(off) of \(count) bytes", closedAtStart: off == 0)
            }
            if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR {
                try waitReady(fd, events: POLLIN, deadline: deadline, what: "receive")
                continue
            }
            throw Failure(description: errnoText("recv"))
        }
    }

    /// Linux's IOV_MAX: the most segments one `sendmsg`/`recvmsg` takes.
    static let maxSegmentsPerCall = 1024

    /// Sends the `count` segments of `iov` in order (at most IOV_MAX per system call), waiting for room at
    /// most until `deadline`. `iov` is consumed: its entries are advanced past what was sent.
    static func sendv(_ fd: Int32, _ iov: UnsafeMutablePointer<iovec>, _ count: Int, deadline: Date) throws {
        try vectored(fd, iov, count, deadline: deadline, what: "send") { iov, n in
            var msg = msghdr()
            msg.msg_iov = iov
            msg.msg_iovlen = n
            return Glibc.sendmsg(fd, &msg, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
        }
    }

    /// Receives exactly the bytes of the `count` segments of `iov`, in order, by `deadline`; the peer
    /// closing first is an error. `iov` is consumed as in `sendv`.
    static func recvv(_ fd: Int32, _ iov: UnsafeMutablePointer<iovec>, _ count: Int, deadline: Date) throws {
        try vectored(fd, iov, count, deadline: deadline, what: "receive") { iov, n in
            var msg = msghdr()
            msg.msg_iov = iov
            msg.msg_iovlen = n
            let r = Glibc.recvmsg(fd, &msg, Int32(MSG_DONTWAIT))
            return r == 0 ? -2 : r
        }
    }

    private static func vectored(
        _ fd: Int32, _ iov: UnsafeMutablePointer<iovec>, _ count: Int, deadline: Date, what: String,
        _ io: (UnsafeMutablePointer<iovec>, Int) -> Int
    ) throws {
        var first = 0
        while first < count && iov[first].iov_len == 0 { first += 1 }
        while first < count {
            let r = io(iov + first, min(count - first, maxSegmentsPerCall))
            if r == -2 { throw Failure(description: "the peer closed the connection during the \(what)") }
            if r < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR {
                    try waitReady(fd, events: what == "send" ? POLLOUT : POLLIN, deadline: deadline, what: what)
                    continue
                }
                throw Failure(description: errnoText(what))
            }
            var done = r
            while first < count && done >= iov[first].iov_len {
                done -= iov[first].iov_len
                first += 1
            }
            if done > 0 {
                iov[first].iov_base = iov[first].iov_base! + done
                iov[first].iov_len -= done
            }
            while first < count && iov[first].iov_len == 0 { first += 1 }
        }
    }

    private static func waitReady(_ fd: Int32, events: Int32, deadline: Date, what: String) throws {
        while true {
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { throw Failure(description: "\(what) timed out") }
            var p = pollfd(fd: fd, events: Int16(events), revents: 0)
            let n = poll(&p, 1, Int32(min(100, max(1, left * 1000))))
            if n > 0 { return }
            if n < 0 && errno != EINTR { throw Failure(description: errnoText("poll")) }
        }
    }

    /// A length-prefixed JSON message (u32 little-endian length, then UTF-8 JSON).
    static func sendMessage<T: Encodable>(_ fd: Int32, _ value: T, deadline: Date) throws {
        let body = try JSONEncoder().encode(value)
        var len = UInt32(body.count).littleEndian
        try send(fd, &len, 4, deadline: deadline)
        try body.withUnsafeBytes { try send(fd, $0.baseAddress!, body.count, deadline: deadline) }
    }

    static func receiveMessage<T: Decodable>(_ fd: Int32, _ type: T.Type, deadline: Date) throws -> T {
        var len: UInt32 = 0
        try recv(fd, &len, 4, deadline: deadline)
        let n = Int(UInt32(littleEndian: len))
        guard n <= 16 << 20 else { throw Failure(description: "message of \(n) bytes is too large") }
        var body = [UInt8](repeating: 0, count: n)
        try body.withUnsafeMutableBytes { try recv(fd, $0.baseAddress!, n, deadline: deadline) }
        do { return try JSONDecoder().decode(T.self, from: Data(body)) } catch {
            throw Failure(description: "malformed message: \(error)")
        }
    }
}
