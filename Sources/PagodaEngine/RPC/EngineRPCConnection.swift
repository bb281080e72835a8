import Foundation
import PagodaDistributed

#if canImport(Glibc)
import Glibc
#endif

/// One connected engine RPC socket. `send` may be called from any thread (frames are written
/// whole under a lock); `receive` from one reader thread at a time.
public final class EngineRPCConnection: @unchecked Sendable {
    private let fd: Int32
    private let writeLock = NSLock()
    private var readBuffer: [UInt8] = []
    /// Start of unread bytes in `readBuffer`.
    private var readStart = 0
    /// Scratch space for read(2).
    private var chunk = [UInt8](repeating: 0, count: 1 << 16)
    private let closeLock = NSLock()
    private var isClosed = false
    /// Seconds `receive` waits for any byte before it throws `EngineRPCError.timeout` (nil: forever).
    private var receiveTimeout: Double?

    init(fd: Int32) {
        self.fd = fd
        // A peer that vanished must surface as an error from write(), not kill the process.
        signal(SIGPIPE, SIG_IGN)
    }

    /// Connects to a listening peer, retrying for up to `timeout` seconds, and proves `secret` to it
    /// (`PeerAuthentication`); a refusal throws `EngineRPCError.refused` with the reason, without retrying.
    public static func connect(to address: EngineRPCAddress, secret: PeerSecret, timeout: Double = 10) throws
        -> EngineRPCConnection
    {
        let fd = try EngineRPCSocket.connect(to: address, timeout: timeout)
        do { try PeerAuthentication.connect(fd: fd, secret: secret) } catch {
            Glibc.close(fd)
            // Only a refusal is final; a listener busy with another peer's handshake may just be slow.
            if case .timeout? = error as? PeerAuthenticationError {
                throw EngineRPCError.timeout("authentication with \(address): \(error)")
            }
            throw EngineRPCError.refused("authentication with \(address) failed: \(error)")
        }
        return EngineRPCConnection(fd: fd)
    }

    /// A connected pair in this process (tests).
    public static func pair() throws -> (EngineRPCConnection, EngineRPCConnection) {
        var fds: [Int32] = [0, 0]
        #if canImport(Glibc)
        let type = Int32(SOCK_STREAM.rawValue)
        #else
        let type = SOCK_STREAM
        #endif
        guard socketpair(AF_UNIX, type, 0, &fds) == 0 else { throw EngineRPCError.socket(EngineRPCSocket.errnoText("socketpair")) }
        return (EngineRPCConnection(fd: fds[0]), EngineRPCConnection(fd: fds[1]))
    }

    /// Makes `receive` give up with `EngineRPCError.timeout` when no byte arrives for `seconds` (a peer behind a
    /// cut network); nil waits forever.
    public func setReceiveTimeout(_ seconds: Double?) {
        receiveTimeout = seconds
        let s = seconds ?? 0
        var tv = timeval(tv_sec: Int(s), tv_usec: Int((s - Double(Int(s))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// The IPv4 address of this end of a TCP connection (how the peer reaches this host), or nil.
    public var localIPv4Address: String? { Self.ipv4(fd, peer: false) }
    /// The IPv4 address of the other end of a TCP connection, or nil.
    public var peerIPv4Address: String? { Self.ipv4(fd, peer: true) }

    private static func ipv4(_ fd: Int32, peer: Bool) -> String? {
        var sin = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { peer ? getpeername(fd, $0, &len) : getsockname(fd, $0, &len) }
        }
        guard rc == 0, sin.sin_family == sa_family_t(AF_INET) else { return nil }
        var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        guard inet_ntop(AF_INET, &sin.sin_addr, &text, socklen_t(text.count)) != nil else { return nil }
        return String(cString: text)
    }

    public func send(_ message: EngineRPCMessage) throws {
        let frame = try EngineRPCFrame.encode(message)
        writeLock.lock(); defer { writeLock.unlock() }
        try frame.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw errno == EPIPE || errno == ECONNRESET || errno == EBADF
                        ? EngineRPCError.closed
                        : EngineRPCError.socket(EngineRPCSocket.errnoText("write"))
                }
                offset += n
            }
        }
    }

    /// The next message, or nil when the peer closed the connection cleanly between frames.
    public func receive() throws -> EngineRPCMessage? {
        while true {
            let available = readBuffer.count - readStart
            if available >= 4 {
                let b = readBuffer
                let s = readStart
                let length = Int(b[s]) << 24 | Int(b[s + 1]) << 16 | Int(b[s + 2]) << 8 | Int(b[s + 3])
                guard length >= 1, length <= EngineRPCFrame.maxFrameBytes else {
                    throw EngineRPCError.badFrame("length \(length)")
                }
                if available >= 4 + length {
                    let message = try EngineRPCFrame.decode(body: readBuffer[(s + 4)..<(s + 4 + length)])
                    readStart += 4 + length
                    if readStart == readBuffer.count { readBuffer.removeAll(keepingCapacity: true); readStart = 0 }
                    return message
                }
            }
            // Compact, then read more.
            if readStart > 0 {
                readBuffer.removeSubrange(0..<readStart)
                readStart = 0
            }
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == ECONNRESET || errno == EBADF { return try endOfStream() }
                if errno == EAGAIN || errno == EWOULDBLOCK, let t = receiveTimeout {
                    throw EngineRPCError.timeout("nothing received from the peer for \(t) s (heartbeats stopped: peer or network lost)")
                }
                throw EngineRPCError.socket(EngineRPCSocket.errnoText("read"))
            }
            if n == 0 { return try endOfStream() }
            readBuffer.append(contentsOf: chunk[0..<n])
        }
    }

    private func endOfStream() throws -> EngineRPCMessage? {
        if readBuffer.count - readStart > 0 { throw EngineRPCError.badFrame("connection closed inside a frame") }
        return nil
    }

    /// Shuts the socket down both ways: a blocked reader wakes with end-of-stream, the peer sees
    /// the connection close. Idempotent. The descriptor itself is closed on deinit, so a reader
    /// thread never reads a reused descriptor.
    public func close() {
        closeLock.lock(); defer { closeLock.unlock() }
        if isClosed { return }
        isClosed = true
        shutdown(fd, Int32(SHUT_RDWR))
    }

    deinit { Glibc.close(fd) }
}
