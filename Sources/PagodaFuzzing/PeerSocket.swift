import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A peer that sent some bytes and closed its side, for the targets whose parsers read a socket (the
/// handshake, the KV transfer): one end of a Unix socket pair with the bytes in flight.
enum PeerSocket {
    /// Runs `body` on one end of a socket pair whose other end has sent `bytes` and shut down for writing;
    /// what `body` sends back is discarded. False when no socket pair could be made.
    static func withPeer(sending bytes: [UInt8], _ body: (Int32) -> Bool) -> Bool {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else { return false }
        defer { close(fds[0]); close(fds[1]) }
        // Room for the whole input and for any answer (a few KB), so neither side ever waits on the other.
        var room: Int32 = 1 << 20
        for fd in fds {
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &room, socklen_t(MemoryLayout<Int32>.size))
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &room, socklen_t(MemoryLayout<Int32>.size))
        }
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes {
                send(fds[0], $0.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            }
            guard n > 0 else { break }  // what does not fit is not sent: the reader sees a shorter input
            off += n
        }
        shutdown(fds[0], Int32(SHUT_WR))
        return body(fds[1])
    }
}
