import Foundation
import Hummingbird

/// Errors the proxy itself answers with, in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
enum ProxyErrorBody {
    static func json(status: Int, type: String, message: String, param: String? = nil) -> [UInt8] {
        let error: [String: Any] = [
            "message": message, "type": type, "param": param ?? NSNull(), "code": status,
        ]
        return (try? JSONSerialization.data(withJSONObject: ["error": error], options: [.sortedKeys])).map(Array.init)
            ?? Array(#"{"error":{"message":"internal error","type":"InternalServerError","code":500}}"#.utf8)
    }

    static func response(status: Int, type: String, message: String, param: String? = nil, requestID: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers.requestID = requestID
        return Response(
            status: .init(code: status), headers: headers,
            body: .init(byteBuffer: ByteBuffer(bytes: json(status: status, type: type, message: message, param: param))))
    }

    /// The SSE event sent when a stream breaks after bytes reached the client. The OpenAI clients raise
    /// on a `data:` payload with an `error` key; no `[DONE]` follows, so no client mistakes it for a normal end.
    static func sseEvent(status: Int, type: String, message: String) -> ByteBuffer {
        var bytes = Array("data: ".utf8)
        bytes += json(status: status, type: type, message: message)
        bytes += Array("\n\n".utf8)
        return ByteBuffer(bytes: bytes)
    }
}

extension HTTPFields {
    /// `X-Request-Id` (HTTPTypes' field-name type is not re-exported by Hummingbird; the name is built in context).
    var requestID: String? {
        get { self[.init("X-Request-Id")!] }
        set { self[.init("X-Request-Id")!] = newValue }
    }
}
