import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Mutual authentication of two processes of one deployment when a connection is set up: an HMAC-SHA256
/// challenge-response keyed by the deployment's `PeerSecret`, on a fresh socket before any byte of the
/// protocol it carries (engine RPC, TP rendezvous, KV transfer).
///
///     connector → acceptor   "PGAUTH01" ‖ nonceC (32 bytes)
///     acceptor  → connector  "PGAUTH01" ‖ nonceA (32 bytes)
///     connector → acceptor   HMAC(K, "pagoda-auth connector" ‖ nonceA ‖ nonceC)
///     acceptor  → connector  verdict (0 accepted, 1 refused) ‖ HMAC(K, "pagoda-auth acceptor" ‖ nonceC ‖ nonceA)
///                            (32 zero bytes when refused)
///
/// Each side proves the secret over the other's fresh nonce, so a recorded exchange cannot be replayed, and
/// the role label keeps one side's proof from being reflected back as the other's. The acceptor answers only
/// after checking the connector's proof; proofs are compared in constant time. Every wait has a deadline, so
/// a silent peer costs the listener at most `timeout` seconds. vLLM has no equivalent (its ZMQ sockets and
/// KV connectors trust the network).
public enum PeerAuthentication {
    static let magic: [UInt8] = Array("PGAUTH01".utf8)
    static let nonceBytes = 32
    static let macBytes = 32
    /// Seconds a handshake may take when the caller names no timeout.
    public static let defaultTimeout: Double = 5

    /// The listening side: checks the connector's proof, then proves the secret in turn. Throws
    /// `PeerAuthenticationError` with the reason (no handshake, wrong secret, timeout, closed); the caller
    /// closes the socket and keeps listening.
    public static func accept(fd: Int32, secret: PeerSecret, timeout: Double = defaultTimeout) throws {
        let deadline = Date() + timeout
        let first = try read(fd, count: magic.count, deadline: deadline, during: "waiting for the peer's handshake")
        guard first == magic else { throw PeerAuthenticationError.noHandshake(first) }
        let nonceC = try read(fd, count: nonceBytes, deadline: deadline, during: "reading the peer's challenge")
        let nonceA = randomNonce()
        try write(fd, magic + nonceA, deadline: deadline)
        let proof = try read(fd, count: macBytes, deadline: deadline, during: "waiting for the peer's proof")
        guard constantTimeEqual(proof, mac(secret, label: "connector", nonceA, nonceC)) else {
            try? write(fd, [1] + [UInt8](repeating: 0, count: macBytes), deadline: deadline)
            throw PeerAuthenticationError.wrongSecret(peerRefused: false)
        }
        try write(fd, [0] + mac(secret, label: "acceptor", nonceC, nonceA), deadline: deadline)
    }

    /// The connecting side: proves the secret, then checks the listener's proof. Throws
    /// `PeerAuthenticationError` with the reason; the caller closes the socket.
    public static func connect(fd: Int32, secret: PeerSecret, timeout: Double = defaultTimeout) throws {
        let deadline = Date() + timeout
        let nonceC = randomNonce()
        try write(fd, magic + nonceC, deadline: deadline)
        let first = try read(fd, count: magic.count, deadline: deadline, during: "waiting for the listener's challenge")
        guard first == magic else { throw PeerAuthenticationError.noHandshake(first) }
        let nonceA = try read(fd, count: nonceBytes, deadline: deadline, during: "reading the listener's challenge")
        try write(fd, mac(secret, label: "connector", nonceA, nonceC), deadline: deadline)
        let answer = try read(fd, count: 1 + macBytes, deadline: deadline, during: "waiting for the listener's verdict")
        guard answer[0] == 0 else { throw PeerAuthenticationError.wrongSecret(peerRefused: true) }
        guard constantTimeEqual(Array(answer[1...]), mac(secret, label: "acceptor", nonceC, nonceA)) else {
            throw PeerAuthenticationError.wrongSecret(peerRefused: false)
        }
    }

    /// HMAC-SHA256 of "pagoda-auth <label>" ‖ a ‖ b.
    static func mac(_ secret: PeerSecret, label: String, _ a: [UInt8], _ b: [UInt8]) -> [UInt8] {
        hmacSHA256(key: secret.key, Array("pagoda-auth \(label)".utf8), a, b)
    }

    /// HMAC-SHA256 (RFC 2104) of the concatenated `parts` (swift-crypto).
    static func hmacSHA256(key: [UInt8], _ parts: [UInt8]...) -> [UInt8] {
        var h = HMAC<SHA256>(key: SymmetricKey(data: key))
        for p in parts { h.update(data: p) }
        return Array(h.finalize())
    }

    static func randomNonce() -> [UInt8] {
        var g = SystemRandomNumberGenerator()
        return (0..<nonceBytes).map { _ in UInt8.random(in: 0...255, using: &g) }
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }

    // MARK: I/O with a deadline (works on blocking and non-blocking sockets, Unix or TCP)

    private static func read(_ fd: Int32, count: Int, deadline: Date, during what: String) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            try wait(fd, events: POLLIN, deadline: deadline, during: what)
            let n = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, count - got, Int32(MSG_DONTWAIT)) }
            if n > 0 { got += n; continue }
            if n == 0 {
                throw PeerAuthenticationError.closed(got == 0 ? what : "\(what) (after \(got) of \(count) bytes)")
            }
            if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { continue }
            if errno == ECONNRESET { throw PeerAuthenticationError.closed(what) }
            throw PeerAuthenticationError.io("recv: \(String(cString: strerror(errno)))")
        }
        return bytes
    }

    private static func write(_ fd: Int32, _ bytes: [UInt8], deadline: Date) throws {
        var sent = 0
        while sent < bytes.count {
            try wait(fd, events: POLLOUT, deadline: deadline, during: "sending the handshake")
            let n = bytes.withUnsafeBytes {
                send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL))
            }
            if n > 0 { sent += n; continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) { continue }
            if n < 0 && (errno == EPIPE || errno == ECONNRESET) { throw PeerAuthenticationError.closed("sending the handshake") }
            throw PeerAuthenticationError.io("send: \(String(cString: strerror(errno)))")
        }
    }

    private static func wait(_ fd: Int32, events: Int32, deadline: Date, during what: String) throws {
        while true {
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { throw PeerAuthenticationError.timeout(what) }
            var p = pollfd(fd: fd, events: Int16(events), revents: 0)
            let n = poll(&p, 1, Int32(min(1000, max(1, left * 1000))))
            if n > 0 { return }
            if n < 0 && errno != EINTR { throw PeerAuthenticationError.io("poll: \(String(cString: strerror(errno)))") }
        }
    }
}

/// Why a peer failed `PeerAuthentication`; the description is the logged reason.
public enum PeerAuthenticationError: Error, CustomStringConvertible, Equatable {
    /// The peer sent something other than the handshake first: it has no secret configured, or it is not
    /// a Pagoda process of this version.
    case noHandshake([UInt8])
    /// The proof does not match this side's secret. `peerRefused`: the other side refused this side's proof.
    case wrongSecret(peerRefused: Bool)
    /// No answer within the handshake's timeout.
    case timeout(String)
    /// The peer closed the connection during the handshake.
    case closed(String)
    case io(String)

    public var description: String {
        switch self {
        case .noHandshake(let bytes):
            let hex = bytes.map { String(format: "%02x", $0) }.joined()
            return "no secret: the peer did not authenticate (it sent 0x\(hex) instead of the handshake)"
        case .wrongSecret(true): return "wrong secret: the peer refused this side's proof (the two sides' secrets differ)"
        case .wrongSecret(false): return "wrong MAC: the peer's proof does not match this side's secret (the two sides' secrets differ)"
        case .timeout(let what): return "timeout while \(what)"
        case .closed(let what): return "the peer closed the connection while \(what) (does it run without the secret?)"
        case .io(let s): return "authentication I/O error: \(s)"
        }
    }
}
