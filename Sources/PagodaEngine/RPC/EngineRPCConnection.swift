#if canImport(Glibc)
import Glibc
#endif
import Foundation

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

    init(fd: Int32) {
        self.fd = fd
        // A peer that vanished must surface as an error from write(), not kill the process.
        signal(SIGPIPE, SIG_IGN)
    }

    /// Connects to a listening front-end, retrying for up to `timeout` seconds.
    public static func connect(to address: EngineRPCAddress, timeout: Double = 10) throws -> EngineRPCConnection {
        EngineRPCConnection(fd: try EngineRPCSocket.connect(to: address, timeout: timeout))
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

    /// Bounds every later `receive` to `seconds` without a byte (nil: wait forever); a receive that runs
    /// out throws `EngineRPCError.timeout`. Used while waiting for a peer's handshake.
    public func setReceiveTimeout(_ seconds: Double?) {
        let s = seconds ?? 0
        var tv = timeval(tv_sec: Int(s), tv_usec: Int((s - Double(Int(s))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
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
                    throw errno == EPIPE || errno == ECONNRESET || errno == EBADF ? EngineRPCError.closed
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
                if errno == EAGAIN || errno == EWOULDBLOCK { throw EngineRPCError.timeout("no message from the peer within the receive timeout") }
                if errno == ECONNRESET || errno == EBADF { return try endOfStream() }
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
