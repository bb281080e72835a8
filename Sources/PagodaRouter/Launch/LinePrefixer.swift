/// Cuts a child's output into lines and prefixes each with its rank (`[rank 1] ...`).
/// Bytes arrive in arbitrary pieces; a line is emitted only once its newline has arrived.
public struct LinePrefixer: Sendable {
    public let prefix: [UInt8]
    private var pending: [UInt8] = []

    public init(prefix: String) { self.prefix = Array(prefix.utf8) }

    /// Complete prefixed lines (each ending in a newline) from `bytes` and what was pending.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        for byte in bytes {
            pending.append(byte)
            if byte == UInt8(ascii: "\n") {
                out += prefix
                out += pending
                pending.removeAll(keepingCapacity: true)
            }
        }
        return out
    }

    /// The unterminated last line, prefixed and newline-terminated (at end of output).
    public mutating func finish() -> [UInt8] {
        guard !pending.isEmpty else { return [] }
        defer { pending.removeAll() }
        return prefix + pending + [UInt8(ascii: "\n")]
    }
}
