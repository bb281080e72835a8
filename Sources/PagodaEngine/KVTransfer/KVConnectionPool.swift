import Foundation
import PagodaDistributed

#if canImport(Glibc)
import Glibc
#endif

/// Authenticated KV-transfer connections a consumer keeps open to its producers' `KVBlockServer`s between
/// reads, so a transfer skips the connect and the HMAC handshake (three round trips, several wake-ups)
/// that a fresh connection costs.
///
/// A connection is used by one read at a time: `take` hands it out and removes it, `put` gives back one
/// whose last read ended cleanly (reply and every block byte consumed). A connection idle for longer than
/// `maxIdleSeconds` is closed: the producer closes its end after `KVBlockServer.idleSeconds`, which is
/// longer. One the producer has closed meanwhile (it restarted, died, or its idle time ran out) shows up in
/// `take` as readable or hung up and is closed instead of handed out; one that dies between `take` and
/// the request shows up as an error before any reply byte, and the fetcher then dials a fresh one
/// (`KVBlockFetcher.fetchPart`).
final class KVConnectionPool: @unchecked Sendable {
    /// The pool the consumers of this process share.
    static let shared = KVConnectionPool()

    /// Longest time a connection waits here for its next read.
    let maxIdleSeconds: Double
    /// Most idle connections kept per producer rank (extras are closed).
    let maxIdlePerPeer: Int

    private struct Idle {
        var fd: Int32
        var since: Date
    }

    /// A producer rank, and the secret its connections were authenticated with (a read proving another
    /// secret never gets one of them).
    private struct Peer: Hashable {
        var host: String
        var port: Int
        var secret: [UInt8]
    }

    private let lock = NSLock()
    // Guarded by `lock`:
    private var idle: [Peer: [Idle]] = [:]

    init(maxIdleSeconds: Double = 30, maxIdlePerPeer: Int = 8) {
        self.maxIdleSeconds = maxIdleSeconds
        self.maxIdlePerPeer = maxIdlePerPeer
    }

    /// An open connection to `host:port`, authenticated with `secret`, whose peer has not closed it, or nil.
    func take(host: String, port: Int, secret: PeerSecret) -> Int32? {
        let now = Date()
        var stale: [Int32] = []
        defer { for fd in stale { close(fd) } }
        lock.lock()
        defer { lock.unlock() }
        let k = Peer(host: host, port: port, secret: secret.key)
        while var list = idle[k], let last = list.popLast() {
            idle[k] = list.isEmpty ? nil : list
            if now.timeIntervalSince(last.since) > maxIdleSeconds || !Self.looksOpen(last.fd) {
                stale.append(last.fd)
                continue
            }
            return last.fd
        }
        return nil
    }

    /// Gives back `fd`, a connection to `host:port` authenticated with `secret` whose last read ended cleanly.
    /// Connections to other peers idle for longer than `maxIdleSeconds` are closed on the way (a producer
    /// no longer read from leaves nothing open here).
    func put(_ fd: Int32, host: String, port: Int, secret: PeerSecret) {
        let now = Date()
        var closing: [Int32] = []
        lock.lock()
        let k = Peer(host: host, port: port, secret: secret.key)
        for (other, list) in idle where other != k {
            let (old, fresh) = (
                list.filter { now.timeIntervalSince($0.since) > maxIdleSeconds },
                list.filter { now.timeIntervalSince($0.since) <= maxIdleSeconds }
            )
            if !old.isEmpty {
                closing += old.map(\.fd)
                idle[other] = fresh.isEmpty ? nil : fresh
            }
        }
        var list = idle[k] ?? []
        if list.count < maxIdlePerPeer {
            list.append(Idle(fd: fd, since: now))
            idle[k] = list
        } else {
            closing.append(fd)
        }
        lock.unlock()
        for fd in closing { close(fd) }
    }

    /// Closes every idle connection (to `host:port` only, when given).
    func closeAll(host: String? = nil, port: Int? = nil) {
        lock.lock()
        var fds: [Int32] = []
        for (k, list) in idle where host == nil || (k.host == host && (port == nil || k.port == port)) {
            fds += list.map(\.fd)
            idle[k] = nil
        }
        lock.unlock()
        for fd in fds { close(fd) }
    }

    /// Idle connections held (all peers).
    var count: Int { lock.lock(); defer { lock.unlock() }; return idle.values.reduce(0) { $0 + $1.count } }

    /// Between reads the producer sends nothing: a readable connection (end of file, a reset, or stray
    /// bytes) or one with an error is not fit for another read.
    static func looksOpen(_ fd: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let n = poll(&p, 1, 0)
        return n == 0
    }
}
