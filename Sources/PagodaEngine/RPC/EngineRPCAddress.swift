import Foundation
import Logging
import PagodaDistributed

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where an engine RPC endpoint lives: a Unix socket path (same host) or a TCP host:port.
/// Written as `unix:/path/to/sock` or `tcp://127.0.0.1:5570` on command lines.
public enum EngineRPCAddress: Sendable, Equatable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: Int)

    public init(parsing s: String) throws {
        if s.hasPrefix("unix:") {
            let path = String(s.dropFirst(5))
            guard !path.isEmpty else { throw EngineRPCError.badAddress(s) }
            self = .unix(path: path)
        } else if s.hasPrefix("tcp://") {
            let rest = s.dropFirst(6)
            guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]),
                (0...65535).contains(port)
            else { throw EngineRPCError.badAddress(s) }
            self = .tcp(host: String(rest[..<colon]), port: port)
        } else {
            throw EngineRPCError.badAddress(s)
        }
    }

    public var description: String {
        switch self {
        case .unix(let path): return "unix:\(path)"
        case .tcp(let host, let port): return "tcp://\(host):\(port)"
        }
    }
}

/// Errors of the engine RPC transport and handshake.
public enum EngineRPCError: Error, CustomStringConvertible, Equatable {
    case badAddress(String)
    case socket(String)
    case closed
    case badFrame(String)
    case handshake(String)
    case timeout(String)
    /// This side refused the peer's hello (another protocol version, model, or a rank not to be admitted).
    case refused(String)

    public var description: String {
        switch self {
        case .badAddress(let s): return "bad engine RPC address '\(s)' (expected unix:/path or tcp://host:port)"
        case .socket(let s): return "engine RPC socket error: \(s)"
        case .closed: return "engine RPC connection closed"
        case .badFrame(let s): return "bad engine RPC frame: \(s)"
        case .handshake(let s): return "engine RPC handshake failed: \(s)"
        case .timeout(let s): return "engine RPC timed out: \(s)"
        case .refused(let s): return "engine refused: \(s)"
        }
    }
}

/// Socket plumbing (POSIX, blocking): the engine module stays free of NIO.
enum EngineRPCSocket {
    static func errnoText(_ what: String) -> String { "\(what): \(String(cString: strerror(errno)))" }

    /// Calls `body` with the sockaddr for `address`.
    static func withSockaddr<R>(_ address: EngineRPCAddress, _ body: (UnsafePointer<sockaddr>, socklen_t, Int32) throws -> R) throws -> R {
        switch address {
        case .unix(let path):
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            let capacity = MemoryLayout.size(ofValue: addr.sun_path)
            guard bytes.count < capacity else { throw EngineRPCError.badAddress("unix:\(path) (path longer than \(capacity - 1) bytes)") }
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in
                raw.copyBytes(from: bytes)
                raw[bytes.count] = 0
            }
            return try withUnsafePointer(to: &addr) {
                try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    try body($0, socklen_t(MemoryLayout<sockaddr_un>.size), AF_UNIX)
                }
            }
        case .tcp(let host, let port):
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            let h = host == "localhost" ? "127.0.0.1" : host
            guard inet_pton(AF_INET, h, &addr.sin_addr) == 1 else {
                throw EngineRPCError.badAddress("tcp://\(host):\(port) (IPv4 address expected)")
            }
            return try withUnsafePointer(to: &addr) {
                try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    try body($0, socklen_t(MemoryLayout<sockaddr_in>.size), AF_INET)
                }
            }
        }
    }

    /// Who is at the other end, for log lines: `ip:port` (TCP), or `local peer` (Unix socket).
    static func peerDescription(_ fd: Int32) -> String {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &len) }
        }
        guard rc == 0 else { return "unknown peer" }
        if storage.ss_family == sa_family_t(AF_INET) {
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    var addr = sin.pointee.sin_addr
                    var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
                    inet_ntop(AF_INET, &addr, &text, socklen_t(text.count))
                    return "\(String(cString: text)):\(UInt16(bigEndian: sin.pointee.sin_port))"
                }
            }
        }
        return "local peer"
    }

    static func makeSocket(family: Int32) throws -> Int32 {
        #if canImport(Glibc)
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(family, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw EngineRPCError.socket(errnoText("socket")) }
        return fd
    }

    static func configure(_ fd: Int32, family: Int32) {
        var one: Int32 = 1
        if family == AF_INET {
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        // Larger buffers: batches of outputs and large prompts travel in one write.
        var size: Int32 = 4 << 20
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Connects to `address`, retrying until `timeout` seconds have passed (the listener may not be up yet).
    static func connect(to address: EngineRPCAddress, timeout: Double) throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let result: Int32 = try withSockaddr(address) { sa, len, family in
                let fd = try makeSocket(family: family)
                if Glibc.connect(fd, sa, len) == 0 { configure(fd, family: family); return fd }
                close(fd)
                return -1
            }
            if result >= 0 { return result }
            if Date() > deadline { throw EngineRPCError.socket(errnoText("connect to \(address)")) }
            usleep(20_000)
        }
    }
}

/// A listening engine RPC socket (the front-end's side: engine cores connect to it; or an engine core's,
/// with several front-ends). Every connection must pass `PeerAuthentication` with the listener's secret
/// before `accept` hands it out; one that fails is logged with its reason and closed, and the listener
/// keeps listening.
public final class EngineRPCListener: @unchecked Sendable {
    public let address: EngineRPCAddress
    let fd: Int32
    private let family: Int32
    private let secret: PeerSecret
    private let logger = Logger(label: "pagoda.engine-rpc")

    /// What its peers are, for log lines ("an engine RPC").
    private let purpose: String

    /// Binds and listens. A TCP port 0 picks a free port (see `address`).
    public init(address: EngineRPCAddress, secret: PeerSecret, purpose: String = "an engine RPC") throws {
        self.secret = secret
        self.purpose = purpose
        var bound = address
        if case .unix(let path) = address { unlink(path) }
        var fam: Int32 = 0
        let listening: Int32 = try EngineRPCSocket.withSockaddr(address) { sa, len, family in
            fam = family
            let fd = try EngineRPCSocket.makeSocket(family: family)
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            guard bind(fd, sa, len) == 0 else {
                let e = EngineRPCSocket.errnoText("bind \(address)"); close(fd); throw EngineRPCError.socket(e)
            }
            guard listen(fd, 16) == 0 else {
                let e = EngineRPCSocket.errnoText("listen \(address)"); close(fd); throw EngineRPCError.socket(e)
            }
            return fd
        }
        fd = listening
        family = fam
        if case .tcp(let host, 0) = address {
            var sin = sockaddr_in()
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listening, $0, &len) }
            }
            bound = .tcp(host: host, port: Int(UInt16(bigEndian: sin.sin_port)))
        }
        self.address = bound
    }

    /// Waits up to `timeout` seconds for one connection. `check` runs about every 50 ms and may
    /// throw to give up early (e.g. the engine process exited).
    public func accept(timeout: Double, check: () throws -> Void = {}) throws -> EngineRPCConnection {
        EngineRPCConnection(fd: try acceptSocket(timeout: timeout, check: check))
    }

    /// `accept`, handing out the authenticated socket itself (a protocol of its own runs on it: the
    /// multiprocess executor's control channel).
    func acceptSocket(timeout: Double, check: () throws -> Void = {}) throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let n = poll(&pfd, 1, 50)
            if n > 0 {
                let c = Glibc.accept(fd, nil, nil)
                if c >= 0 {
                    do {
                        try PeerAuthentication.accept(fd: c, secret: secret)
                    } catch {
                        logger.warning("refused \(purpose) peer (\(EngineRPCSocket.peerDescription(c))) on \(address): \(error)")
                        close(c)
                        continue
                    }
                    EngineRPCSocket.configure(c, family: family)
                    return c
                }
            }
            try check()
            if Date() > deadline { throw EngineRPCError.timeout("no engine core connected to \(address) within \(Int(timeout)) s") }
        }
    }

    deinit {
        close(fd)
        if case .unix(let path) = address { unlink(path) }
    }
}
