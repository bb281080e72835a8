import Foundation

/// The deployment's shared secret for internal connections (engine RPC, the data-parallel handshake, TP
/// rendezvous, KV transfer): the key of the HMAC challenge in `PeerAuthentication`. Its text never appears
/// in a description, a log line or a command line; processes hand it to the processes they spawn through
/// an inherited pipe (`pagoda ... --internal-secret-file /dev/stdin`) or a private socket.
public struct PeerSecret: Sendable, Equatable, Codable, CustomStringConvertible {
    /// The HMAC key: the secret's UTF-8 bytes.
    public let key: [UInt8]

    /// The fewest characters a configured secret may have.
    public static let minimumLength = 16

    /// A secret from configured text (a file's content or an environment variable); surrounding white space
    /// (a file's final newline) is dropped. Throws when what is left is shorter than `minimumLength`.
    public init(text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.utf8.count >= Self.minimumLength else {
            throw PeerSecretError(
                "the internal secret must have at least \(Self.minimumLength) characters, got \(trimmed.utf8.count)")
        }
        key = Array(trimmed.utf8)
    }

    /// A fresh secret: 32 random bytes from the system's generator, as 64 hex digits.
    public static func random() -> PeerSecret {
        var g = SystemRandomNumberGenerator()
        let hex = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &g)) }.joined()
        return try! PeerSecret(text: hex)  // 64 characters: always long enough
    }

    /// The text handed to a child process (written to its stdin pipe, never to argv).
    public var text: String { String(decoding: key, as: UTF8.self) }

    public var description: String { "<internal secret, \(key.count) bytes>" }
}

/// A configured secret that cannot be used (too short).
public struct PeerSecretError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
