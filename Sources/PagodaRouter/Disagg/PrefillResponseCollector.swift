import NIOCore
import NIOHTTP1

/// The client of a disaggregated request's prefill leg: takes the prefill server's whole answer (the
/// forwarder asks for a non-streamed one) and hands it to `onAnswer` once.
final class PrefillResponseCollector: ForwarderClient {
    private var onAnswer: ((_ status: Int, _ body: ByteBuffer) -> Void)?

    init(onAnswer: @escaping (_ status: Int, _ body: ByteBuffer) -> Void) { self.onAnswer = onAnswer }

    func respond(status: HTTPResponseStatus, contentType: String, requestID: String?, body: ByteBuffer) {
        let f = onAnswer
        onAnswer = nil
        f?(Int(status.code), body)
    }

    func respondError(status: Int, type: String, message: String, param: String?, requestID: String) {
        respond(
            status: HTTPResponseStatus(statusCode: status), contentType: "application/json", requestID: requestID,
            body: ByteBuffer(bytes: ProxyErrorBody.json(status: status, type: type, message: message, param: param)))
    }

    // A prefill answer is never streamed (the leg sends `stream: false`); a stream is collected whole anyway.
    private var streamed = ByteBuffer()
    private var streamStatus: HTTPResponseStatus = .ok
    func startStream(status: HTTPResponseStatus, contentType: String, requestID: String) { streamStatus = status }
    func streamChunk(_ buffer: ByteBuffer) { var b = buffer; streamed.writeBuffer(&b) }
    func flush() {}
    func endStream() { respond(status: streamStatus, contentType: "text/event-stream", requestID: nil, body: streamed) }
    var isWritable: Bool { true }
}
