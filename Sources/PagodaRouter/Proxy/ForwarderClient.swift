import NIOCore
import NIOHTTP1

/// Where a `CompletionForwarder` delivers its answer: the client connection (`ProxyConnectionHandler`), or,
/// for the prefill leg of a disaggregated request, a collector that hands the whole answer to the next leg.
protocol ForwarderClient: AnyObject {
    func respond(status: HTTPResponseStatus, contentType: String, requestID: String?, body: ByteBuffer)
    func respondError(status: Int, type: String, message: String, param: String?, requestID: String)
    func startStream(status: HTTPResponseStatus, contentType: String, requestID: String)
    func streamChunk(_ buffer: ByteBuffer)
    func flush()
    func endStream()
    var isWritable: Bool { get }
}

extension ForwarderClient {
    func respondError(status: Int, type: String, message: String, requestID: String) {
        respondError(status: status, type: type, message: message, param: nil, requestID: requestID)
    }
}

extension ProxyConnectionHandler: ForwarderClient {}
