import Foundation
import PagodaDistributed

#if canImport(Glibc)
import Glibc
#endif

/// The multiprocess executor's control channel over TCP, for workers on other hosts (Ray-placed workers,
/// `ParallelConfig.workerControlHost`): the engine listens on its node's address, each worker connects with
/// `pagoda worker --engine-address tcp://host:port` and proves the deployment's secret (`PeerAuthentication`,
/// 5 s) before any frame; then the same length-prefixed frames as the Unix socket (`MultiprocChannel`).
/// Both ends turn on TCP keepalive and a user timeout, so a peer whose host vanished (no FIN, no RST) is
/// noticed within `deadPeerSeconds` instead of never.
enum MultiprocTCPControl {
    /// Idle seconds before the first keepalive probe, seconds between probes, probes before giving up.
    static let keepaliveIdleSeconds: Int32 = 3
    static let keepaliveIntervalSeconds: Int32 = 1
    static let keepaliveProbes: Int32 = 4
    /// Milliseconds sent data may stay unacknowledged before the connection is dropped.
    static let userTimeoutMilliseconds: UInt32 = 10_000
    /// The most seconds a silently vanished peer goes unnoticed (idle + interval × probes, or the user timeout).
    static var deadPeerSeconds: Double {
        max(Double(keepaliveIdleSeconds + keepaliveIntervalSeconds * keepaliveProbes), Double(userTimeoutMilliseconds) / 1000)
    }
    /// Seconds a connected worker has to send its hello.
    static let helloTimeoutSeconds: Double = 5

    /// Keepalive (`keepaliveIdleSeconds` …) and `TCP_USER_TIMEOUT` on a connected control socket.
    static func enableDeadPeerDetection(_ fd: Int32) {
        func set(_ level: Int32, _ name: Int32, _ value: Int32) {
            var v = value
            setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size))
        }
        set(SOL_SOCKET, SO_KEEPALIVE, 1)
        set(Int32(IPPROTO_TCP), TCP_KEEPIDLE, keepaliveIdleSeconds)
        set(Int32(IPPROTO_TCP), TCP_KEEPINTVL, keepaliveIntervalSeconds)
        set(Int32(IPPROTO_TCP), TCP_KEEPCNT, keepaliveProbes)
        set(Int32(IPPROTO_TCP), TCP_USER_TIMEOUT, Int32(userTimeoutMilliseconds))
    }

    /// The engine's listener on `host` (a free port), refusing every peer that does not prove `secret`.
    static func listen(host: String, secret: PeerSecret) throws -> EngineRPCListener {
        do {
            return try EngineRPCListener(address: .tcp(host: host, port: 0), secret: secret, purpose: "a worker control")
        } catch {
            throw MultiprocExecutorError.startFailed("cannot listen for the workers on \(host): \(error)")
        }
    }

    /// The next authenticated connection within `timeout` seconds, or nil; `check` may throw to give up early.
    static func accept(_ listener: EngineRPCListener, timeout: Double, check: () throws -> Void) throws -> MultiprocChannel? {
        let fd: Int32
        do { fd = try listener.acceptSocket(timeout: timeout, check: check) } catch let e as EngineRPCError {
            if case .timeout = e { return nil }
            throw e
        }
        enableDeadPeerDetection(fd)
        return MultiprocChannel(fd: fd)
    }

    /// A worker's connection to its engine at `address` (retrying refused connections for `timeout` seconds),
    /// authenticated with `secret`.
    static func connect(_ address: EngineRPCAddress, secret: PeerSecret, timeout: Double) throws -> MultiprocChannel {
        let fd = try EngineRPCSocket.connect(to: address, timeout: timeout)
        do { try PeerAuthentication.connect(fd: fd, secret: secret) } catch {
            close(fd)
            throw MultiprocExecutorError.startFailed("authentication with the engine at \(address) failed: \(error)")
        }
        EngineRPCSocket.configure(fd, family: AF_INET)
        enableDeadPeerDetection(fd)
        return MultiprocChannel(fd: fd)
    }

    /// "ip:port" of the other end, for log lines.
    static func peer(_ channel: MultiprocChannel) -> String { EngineRPCSocket.peerDescription(channel.fd) }
}
