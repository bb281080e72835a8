import Foundation

/// Errors the proxy itself answers with, in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
enum ProxyErrorBody {
    static func json(status: Int, type: String, message: String, param: String? = nil) -> [UInt8] {
        let error: [String: Any] = [
            "message": message, "type": type, "param": param ?? NSNull(), "code": status,
        ]
        return (try? JSONSerialization.data(withJSONObject: ["error": error], options: [.sortedKeys])).map(Array.init)
            ?? Array(#"{"error":{"message":"internal error","type":"InternalServerError","code":500}}"#.utf8)
    }

    /// The SSE event sent when a stream breaks after bytes reached the client. The OpenAI clients raise
    /// on a `data:` payload with an `error` key; no `[DONE]` follows, so no client mistakes it for a normal end.
    static func sseEvent(status: Int, type: String, message: String) -> [UInt8] {
        Array("data: ".utf8) + json(status: status, type: type, message: message) + Array("\n\n".utf8)
    }
}
