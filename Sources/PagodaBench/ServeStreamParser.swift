/// Splits a server-sent-events byte stream into the `data:` payloads of complete events.
///
/// Bytes arrive in arbitrary pieces; an event ends at a blank line (`\n\n`, or `\r\n\r\n`). Comment lines
/// (`: ping`) and fields other than `data` are skipped; the payloads of several `data:` lines in one event are
/// joined with newlines as the SSE spec says.
public struct ServeStreamParser {
    private var buffer: [UInt8] = []

    public init() {}

    /// Feeds bytes; returns the payloads of the events they complete, in order.
    public mutating func add<Bytes: Sequence>(_ bytes: Bytes) -> [String] where Bytes.Element == UInt8 {
        buffer.append(contentsOf: bytes)
        var payloads: [String] = []
        var eventStart = 0
        var i = 0
        while i < buffer.count {
            // An event ends at "\n\n" or "\n\r\n" (CRLF line endings).
            if buffer[i] == 0x0A {
                var j = i + 1
                if j < buffer.count && buffer[j] == 0x0D { j += 1 }
                if j < buffer.count && buffer[j] == 0x0A {
                    if let payload = Self.payload(of: buffer[eventStart..<i]) { payloads.append(payload) }
                    eventStart = j + 1
                    i = j + 1
                    continue
                }
            }
            i += 1
        }
        if eventStart > 0 { buffer.removeFirst(eventStart) }
        return payloads
    }

    /// Whatever complete event is left when the stream ends without a final blank line.
    public mutating func finish() -> [String] {
        defer { buffer.removeAll() }
        if let payload = Self.payload(of: buffer[...]) { return [payload] }
        return []
    }

    private static func payload(of event: ArraySlice<UInt8>) -> String? {
        let text = String(decoding: event, as: UTF8.self)
        var data: [Substring] = []
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: true) {
            var line = rawLine
            if line.hasSuffix("\r") { line = line.dropLast() }
            if line.hasPrefix(":") { continue }
            guard line.hasPrefix("data:") else { continue }
            var value = line.dropFirst(5)
            if value.hasPrefix(" ") { value = value.dropFirst() }
            data.append(value)
        }
        if data.isEmpty { return nil }
        return data.joined(separator: "\n")
    }
}
