import NIOCore
import NIOHTTP1

/// Forwards one completion request through a prefill server and then a decode server (vLLM's
/// disaggregated prefill proxy), each leg a `CompletionForwarder` with its own balancer, so both legs get
/// the proxy's routing by load in flight, retries before any byte, health and metrics.
///
/// 1. Prefill leg: the client's request with `max_tokens: 1`, unstreamed, and
///    `kv_transfer_params: {"do_remote_decode": true}`, to a prefill server (another one when it is down; a
///    503 naming the failures when none is left). Its answer is collected, not shown to the client.
/// 2. Decode leg: the client's request with the `kv_transfer_params` the prefill answer carries, to a decode
///    server, answered to the client as it comes (streamed when asked); a decode server that fails before any
///    byte is replaced by another. An error answer of the prefill leg (a 4xx) goes to the client as it is.
final class DisaggForwarder: ClientExchange {
    private let client: ProxyConnectionHandler
    private let prefill: ProxyContext
    private let decode: ProxyContext
    private let prefillPool: BackendConnectionPool
    private let decodePool: BackendConnectionPool
    private let path: String
    private let isChat: Bool
    private let body: ByteBuffer
    private let requestID: String
    private let authorization: String?
    private var current: CompletionForwarder?
    private var gone = false

    init(
        client: ProxyConnectionHandler, prefill: ProxyContext, decode: ProxyContext, prefillPool: BackendConnectionPool,
        decodePool: BackendConnectionPool, path: String, body: ByteBuffer, requestID: String, authorization: String?
    ) {
        self.client = client; self.prefill = prefill; self.decode = decode
        self.prefillPool = prefillPool; self.decodePool = decodePool
        self.path = path; isChat = path == "/v1/chat/completions"; self.body = body
        self.requestID = requestID; self.authorization = authorization
    }

    func start() {
        let clientObject: [String: Any]
        let prefillBody: [UInt8]
        do {
            clientObject = try DisaggRequestBodies.object(Array(body.readableBytesView))
            prefillBody = try DisaggRequestBodies.prefill(clientObject)
        } catch let e as DisaggRequestBodies.Invalid {
            client.respondError(status: 400, type: "BadRequestError", message: e.message, param: e.param, requestID: requestID)
            return
        } catch {
            client.respondError(status: 400, type: "BadRequestError", message: "\(error)", requestID: requestID)
            return
        }
        let collector = PrefillResponseCollector { [self] status, answer in
            current = nil
            guard !gone else { return }
            if status >= 500 {
                let detail = String(buffer: answer)
                client.respondError(
                    status: 503, type: "ServiceUnavailableError",
                    message: "no prefill server could take the request: \(detail)", param: nil, requestID: requestID)
                return
            }
            guard status == 200 else {
                // The prefill server's own answer to a bad request is the answer.
                client.respond(
                    status: HTTPResponseStatus(statusCode: status), contentType: "application/json",
                    requestID: requestID, body: answer)
                return
            }
            let params = DisaggRequestBodies.transferParams(fromAnswer: Array(answer.readableBytesView))
            if params == nil {
                prefill.logger.warning(
                    "request \(requestID): the prefill answer has no kv_transfer_params; the decode server computes the prompt itself")
            }
            startDecode(clientObject, params: params)
        }
        let leg = CompletionForwarder(
            client: collector, proxy: prefill, pool: prefillPool, path: path, isChat: isChat,
            body: ByteBuffer(bytes: prefillBody), requestID: requestID, authorization: authorization)
        current = leg
        leg.start()
    }

    private func startDecode(_ clientObject: [String: Any], params: Any?) {
        let decodeBody: [UInt8]
        do { decodeBody = try DisaggRequestBodies.decode(clientObject, params: params) } catch {
            client.respondError(status: 500, type: "InternalServerError", message: "\(error)", requestID: requestID)
            return
        }
        let leg = CompletionForwarder(
            client: client, proxy: decode, pool: decodePool, path: path, isChat: isChat,
            body: ByteBuffer(bytes: decodeBody), requestID: requestID, authorization: authorization)
        current = leg
        leg.start()
    }

    func clientGone() {
        gone = true
        current?.clientGone()
        current = nil
    }

    func clientWritabilityChanged(_ writable: Bool) { current?.clientWritabilityChanged(writable) }
}
