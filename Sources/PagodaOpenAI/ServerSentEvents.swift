import Foundation

/// Server-sent events as the OpenAI streaming API frames them: every event is `data: <json>\n\n`,
/// the stream ends with `data: [DONE]\n\n`.
public enum ServerSentEvents {
    public static let contentType = "text/event-stream"
    public static let done: [UInt8] = Array("data: [DONE]\n\n".utf8)

    /// `data: <payload>\n\n` as bytes.
    public static func frame(_ payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(payload.count + 8)
        out.append(contentsOf: "data: ".utf8)
        out.append(contentsOf: payload)
        out.append(contentsOf: [10, 10])
        return out
    }

    /// A Codable value as one event, JSON-encoded without escaping slashes.
    public static func frame<T: Encodable>(json value: T) throws -> [UInt8] {
        frame(Array(try OpenAIJSON.encode(value)))
    }
}

/// Splits a byte stream of server-sent events into the `data` payload of each event
/// (for clients of an OpenAI server: the proxy, the benchmark). Feed it chunks as they arrive.
/// Multi-line `data:` fields are joined with "\n"; comments and other fields are skipped.
public struct ServerSentEventParser: Sendable {
    private var line: [UInt8] = []
    private var data: [UInt8] = []
    private var hasData = false

    public init() {}

    /// The payloads of the events completed by `bytes`, in order.
    public mutating func feed<C: Collection>(_ bytes: C) -> [String] where C.Element == UInt8 {
        var events: [String] = []
        for b in bytes {
            if b == 10 {  // "\n": a line ends ("\r\n" handled by dropping a trailing "\r")
                if line.last == 13 { line.removeLast() }
                if line.isEmpty {
                    if hasData { events.append(String(decoding: data, as: UTF8.self)) }
                    data.removeAll(keepingCapacity: true); hasData = false
                } else if line.starts(with: "data:".utf8) {
                    var payload = line.dropFirst(5)
                    if payload.first == 32 { payload = payload.dropFirst() }
                    if hasData { data.append(10) }
                    data.append(contentsOf: payload); hasData = true
                }
                line.removeAll(keepingCapacity: true)
            } else {
                line.append(b)
            }
        }
        return events
    }
}
