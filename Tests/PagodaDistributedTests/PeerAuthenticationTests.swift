import Foundation
import XCTest

@testable import PagodaDistributed

/// The HMAC challenge of internal connections: the same secret passes both ways; a wrong secret, a peer
/// without the handshake and a silent peer are refused with their reason, within the timeout.
final class PeerAuthenticationTests: XCTestCase {
    /// A connected Unix socket pair.
    func socketPair() throws -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else { throw XCTSkip("socketpair failed") }
        return (fds[0], fds[1])
    }

    /// Runs the acceptor on its own thread and the connector on this one; returns both outcomes.
    func handshake(acceptor: PeerSecret, connector: PeerSecret, timeout: Double = 5) throws -> (Error?, Error?) {
        let (a, c) = try socketPair()
        defer { close(a); close(c) }
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var acceptError: Error?
        Thread {
            do { try PeerAuthentication.accept(fd: a, secret: acceptor, timeout: timeout) } catch { acceptError = error }
            done.signal()
        }.start()
        var connectError: Error?
        do { try PeerAuthentication.connect(fd: c, secret: connector, timeout: timeout) } catch { connectError = error }
        done.wait()
        return (acceptError, connectError)
    }

    func testHMACSHA256MatchesRFC4231() {
        // RFC 4231 test case 1 and 2.
        let case1 = PeerAuthentication.hmacSHA256(key: [UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8))
        XCTAssertEqual(hex(case1), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        let case2 = PeerAuthentication.hmacSHA256(key: Array("Jefe".utf8), Array("what do ya want ".utf8), Array("for nothing?".utf8))
        XCTAssertEqual(hex(case2), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    func testSameSecretPassesBothWays() throws {
        let s = PeerSecret.random()
        let (a, c) = try handshake(acceptor: s, connector: s)
        XCTAssertNil(a)
        XCTAssertNil(c)
    }

    func testWrongSecretIsRefusedOnBothSides() throws {
        let (a, c) = try handshake(acceptor: .random(), connector: .random())
        XCTAssertEqual(a as? PeerAuthenticationError, .wrongSecret(peerRefused: false))
        XCTAssertEqual(c as? PeerAuthenticationError, .wrongSecret(peerRefused: true))
        XCTAssertTrue("\(c!)".contains("wrong secret"), "\(c!)")
        XCTAssertTrue("\(a!)".contains("wrong MAC"), "\(a!)")
    }

    func testPeerWithoutHandshakeIsRefused() throws {
        let (a, c) = try socketPair()
        defer { close(a); close(c) }
        // What a client without a secret sends first: an engine RPC frame (length, kind, JSON).
        let frame: [UInt8] = [0, 0, 0, 3, 1, 0x7b, 0x7d] + [UInt8](repeating: 0x20, count: 40)
        XCTAssertEqual(frame.withUnsafeBytes { write(c, $0.baseAddress!, $0.count) }, frame.count)
        XCTAssertThrowsError(try PeerAuthentication.accept(fd: a, secret: .random(), timeout: 5)) { error in
            guard case .noHandshake? = error as? PeerAuthenticationError else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".hasPrefix("no secret"), "\(error)")
        }
    }

    func testSilentPeerTimesOut() throws {
        let (a, c) = try socketPair()
        defer { close(a); close(c) }
        let start = Date()
        XCTAssertThrowsError(try PeerAuthentication.accept(fd: a, secret: .random(), timeout: 0.3)) { error in
            guard case .timeout? = error as? PeerAuthenticationError else { return XCTFail("\(error)") }
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 3)
    }

    func testListenerWithoutAuthenticationIsNoticed() throws {
        // A listener that closes at once (an old build, or one that refuses before reading).
        let (a, c) = try socketPair()
        close(a)
        defer { close(c) }
        XCTAssertThrowsError(try PeerAuthentication.connect(fd: c, secret: .random(), timeout: 2)) { error in
            guard case .closed? = error as? PeerAuthenticationError else { return XCTFail("\(error)") }
        }
    }

    func testSecretTextIsValidatedAndNeverDescribed() throws {
        XCTAssertThrowsError(try PeerSecret(text: "short\n"))
        let s = try PeerSecret(text: "0123456789abcdef-secret\n")
        XCTAssertEqual(s.text, "0123456789abcdef-secret")
        XCTAssertFalse("\(s)".contains("0123456789abcdef"))
        XCTAssertNotEqual(PeerSecret.random(), PeerSecret.random())
    }

    private func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }
}
