import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1

/// Forwards one completion request: route it, send it, retry it elsewhere while nothing has reached the
/// client, then pass the answer through (streamed chunk by chunk, or whole), releasing its lease once.
///
/// The path of a request:
/// 1. read the body (bounded), parse only what routing needs (`RequestSummary`), compute its cost;
/// 2. `acquire` a lease on a backend; POST the unchanged body there with `X-Request-Id`;
/// 3. before the first byte goes to the client — connection refused, lost before the first chunk, an empty
///    body, 502/503/504 — give the lease back as a backend failure and try another backend;
/// 4. stream: the first chunk is read before the response head is sent, then chunks pass through as they
///    come; a backend failure after that ends the stream with an SSE error event;
/// 5. the lease is released when the body ends, fails, or the client goes (the writer throws, or the
///    response is dropped unsent: `LeaseToken.deinit`). Dropping the backend body cancels the backend request.
struct CompletionForwarder: Sendable {
    let client: HTTPClient
    let shared: SharedBalancer
    let configuration: ProxyConfiguration
    let logger: Logger

    private enum Attempt {
        case answered(Response)
        case failed(String)
    }

    func forward(_ request: Request, path: String, isChat: Bool) async throws -> Response {
        let requestID = request.headers.requestID ?? "proxy-" + UUID().uuidString
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: configuration.maxBodyBytes)
        } catch {
            return ProxyErrorBody.response(
                status: 413, type: "BadRequestError",
                message: "request body is larger than \(configuration.maxBodyBytes) bytes", requestID: requestID)
        }
        let summary: RequestSummary
        do {
            summary = try RequestSummary(json: Array(buffer: body), isChat: isChat)
        } catch let error as RequestSummary.ParseError {
            return ProxyErrorBody.response(
                status: 400, type: "BadRequestError", message: error.message, param: error.param, requestID: requestID)
        }
        var route = LoadBalancer.RouteRequest(cost: configuration.cost.cost(summary))
        if configuration.policy == .cacheAware {
            let index = PrefixIndex(blockSize: configuration.prefixBlockSize, capacity: 2)
            route.prefixKeys = summary.promptTokenIds.map { index.blockKeys($0) } ?? index.blockKeys(summary.promptText.utf8)
        }

        var excluded = Set<Int>()
        var failures: [String] = []
        for _ in 0..<configuration.maxAttempts {
            guard let lease = shared.withLock({ $0.acquire(route, excluding: excluded) }) else { break }
            let token = LeaseToken(lease, shared)
            switch try await attempt(token, path: path, body: body, summary: summary, request: request, requestID: requestID) {
            case .answered(let response):
                return response
            case .failed(let reason):
                token.release(.backendFailed)
                excluded.insert(lease.backend)
                failures.append(reason)
                logger.warning("request \(requestID): \(reason); retrying on another backend")
            }
        }
        let detail = failures.isEmpty ? "" : " (" + failures.joined(separator: "; ") + ")"
        return ProxyErrorBody.response(
            status: 503, type: "ServiceUnavailableError",
            message: "no healthy backend could take the request" + detail, requestID: requestID)
    }

    private func attempt(
        _ token: LeaseToken, path: String, body: ByteBuffer, summary: RequestSummary, request: Request, requestID: String
    ) async throws -> Attempt {
        let backendIndex = token.lease.backend
        let backend = shared.addresses[backendIndex]
        var outbound = HTTPClientRequest(url: backend.baseURL + path)
        outbound.method = .POST
        outbound.headers.add(name: "Content-Type", value: "application/json")
        outbound.headers.add(name: "X-Request-Id", value: requestID)
        if let authorization = request.headers[.authorization] {
            outbound.headers.add(name: "Authorization", value: authorization)
        }
        outbound.body = .bytes(body)

        let response: HTTPClientResponse
        do {
            response = try await client.execute(outbound, deadline: .now() + .seconds(Int64(configuration.requestTimeout)))
        } catch {
            try Task.checkCancellation()
            return unreachable(backendIndex, backend, error)
        }
        let status = Int(response.status.code)
        if status == 502 || status == 503 || status == 504 {
            return .failed("backend \(backend) answered HTTP \(status)")
        }
        var headers = HTTPFields()
        headers.requestID = requestID
        let contentType = response.headers.first(name: "content-type") ?? "application/json"
        headers[.contentType] = contentType

        if summary.stream && contentType.hasPrefix("text/event-stream") {
            var iterator = response.body.makeAsyncIterator()
            let first: ByteBuffer?
            do {
                first = try await iterator.next()
            } catch {
                try Task.checkCancellation()
                return unreachable(backendIndex, backend, error)
            }
            guard let first else { return .failed("backend \(backend) ended the stream before any byte") }
            headers[.cacheControl] = "no-cache"
            let stream = BackendStream(iterator)
            return .answered(Response(
                status: .init(code: status), headers: headers,
                body: streamBody(first: first, rest: stream, token: token, backend: backend, requestID: requestID)))
        }

        let collected: ByteBuffer
        do {
            collected = try await response.body.collect(upTo: configuration.maxBodyBytes)
        } catch {
            try Task.checkCancellation()
            return unreachable(backendIndex, backend, error)
        }
        if collected.readableBytes == 0 && status < 300 {
            return .failed("backend \(backend) sent an empty HTTP \(status) answer")
        }
        token.release(status >= 500 ? .backendFailed : .completed)
        return .answered(Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: collected)))
    }

    private func unreachable(_ index: Int, _ backend: BackendAddress, _ error: Error) -> Attempt {
        let reason = "backend \(backend) failed before answering: \(error)"
        if shared.withLock({ $0.connectionFailed(backend: index, error: "\(error)") }) == .unhealthy {
            logger.error("backend \(backend) is unhealthy: \(error)")
        }
        return .failed(reason)
    }

    private func streamBody(
        first: ByteBuffer, rest: BackendStream, token: LeaseToken, backend: BackendAddress, requestID: String
    ) -> ResponseBody {
        let logger = self.logger
        return ResponseBody { writer in
            var outcome = LoadBalancer.Outcome.abandoned  // stays so if the client goes (a write throws)
            defer { token.release(outcome) }
            try await writer.write(first)
            while true {
                let chunk: ByteBuffer?
                do {
                    chunk = try await rest.next()
                } catch {
                    // Bytes already reached the client: no retry. Say so in-band, never end silently.
                    // One broken stream does not take the backend out of rotation; the probes decide that.
                    outcome = .backendFailed
                    logger.error("request \(requestID): backend \(backend) failed mid-stream: \(error)")
                    try await writer.write(ProxyErrorBody.sseEvent(
                        status: 502, type: "BadGatewayError",
                        message: "backend \(backend) failed after the stream started (request \(requestID)): \(error)"))
                    try await writer.finish(nil)
                    return
                }
                guard let chunk else { break }
                try await writer.write(chunk)
            }
            outcome = .completed
            try await writer.finish(nil)
        }
    }
}

/// The rest of a backend's response body, held by reference so the response body closure can drain it.
/// Dropping it cancels the backend request (AsyncHTTPClient ends a request whose body is no longer consumed).
final class BackendStream: @unchecked Sendable {
    private var iterator: HTTPClientResponse.Body.AsyncIterator

    init(_ iterator: HTTPClientResponse.Body.AsyncIterator) { self.iterator = iterator }

    func next() async throws -> ByteBuffer? { try await iterator.next() }
}
