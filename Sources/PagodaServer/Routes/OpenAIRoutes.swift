import Foundation
import Hummingbird
import PagodaOpenAI

/// The HTTP routes of the API server, on Hummingbird. Handlers only move bytes: the work is in
/// `OpenAIServing`.
public enum OpenAIRoutes {
    /// vLLM's `X-data-parallel-rank` header, pinning a request to a data-parallel rank.
    static func dataParallelRank(_ request: Request) -> String? {
        request.headers.first { $0.name.canonicalName == "x-data-parallel-rank" }?.value
    }

    public static func makeRouter(serving: OpenAIServing) -> Router<ServerRequestContext> {
        let router = Router(context: ServerRequestContext.self)
        router.add(middleware: OpenAIErrorMiddleware())
        if let key = serving.config.apiKey {
            router.add(middleware: APIKeyMiddleware(apiKey: key, allRoutes: serving.config.apiKeyAllRoutes))
        }
        let limit = serving.config.maxRequestBodyBytes
        let admission = serving.admission

        router.post("/v1/completions") { request, context in
            let data = try await body(request, limit: limit)
            let ticket = try admission.admit()
            let rank = dataParallelRank(request)
            return respond(
                try await context.cancellingOnDisconnect { try await serving.completions(data, dataParallelRankHeader: rank) },
                holding: ticket)
        }
        router.post("/v1/chat/completions") { request, context in
            let data = try await body(request, limit: limit)
            let ticket = try admission.admit()
            let rank = dataParallelRank(request)
            return respond(
                try await context.cancellingOnDisconnect { try await serving.chatCompletions(data, dataParallelRankHeader: rank) },
                holding: ticket)
        }
        router.get("/v1/models") { _, _ in json(try serving.models()) }
        router.post("/tokenize") { request, _ in json(try serving.tokenize(try await body(request, limit: limit))) }
        router.post("/detokenize") { request, _ in json(try serving.detokenize(try await body(request, limit: limit))) }
        router.get("/health") { _, _ -> Response in
            if let reason = serving.engine.starting { throw OpenAIError.serviceUnavailable(reason) }
            if let reason = serving.engine.dead { throw OpenAIError.serviceUnavailable("engine core is not running: \(reason)") }
            if admission.phase != .serving { throw OpenAIError.serviceUnavailable("the server is shutting down") }
            // Data parallel: still healthy while one rank serves, but say which are down.
            let down = serving.engine.engines.filter { $0.down != nil }
            if down.isEmpty { return Response(status: .ok) }
            let body = try OpenAIJSON.encode(HealthResponse(status: "degraded", downRanks: down.map(\.rank)))
            return Response(
                status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
        }
        router.get("/ping") { _, _ -> Response in
            if let reason = serving.engine.dead { throw OpenAIError.serviceUnavailable("engine core is not running: \(reason)") }
            return Response(status: .ok)
        }
        router.post("/ping") { _, _ -> Response in
            if let reason = serving.engine.dead { throw OpenAIError.serviceUnavailable("engine core is not running: \(reason)") }
            return Response(status: .ok)
        }
        router.get("/version") { _, _ in json(try serving.version()) }
        router.get("/load") { _, _ in json(try serving.load()) }
        router.get("/metrics") { _, _ -> Response in
            for e in serving.engine.engines {
                serving.metrics.record(stats: e.stats, rank: e.rank)
                serving.metrics.record(rank: e.rank, up: e.down == nil)
            }
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: serving.metrics.exposition())))
        }
        return router
    }

    /// The whole request body, or 413 when it exceeds `limit`.
    /// An oversized body is still read to its end (and dropped, up to `drainLimit` bytes): clients
    /// such as urllib send the whole body before they read the answer, and would otherwise stall.
    static func body(_ request: Request, limit: Int) async throws -> Data {
        let drainLimit = max(limit, 256 << 20)
        var data = Data()
        var total = 0
        for try await chunk in request.body {
            total += chunk.readableBytes
            if total <= limit {
                data.append(contentsOf: chunk.readableBytesView)
            } else if total > drainLimit {
                break
            }
        }
        if total > limit {
            throw OpenAIError.payloadTooLarge(
                "request body of \(total > drainLimit ? "more than \(drainLimit)" : "\(total)") bytes exceeds the limit of \(limit) bytes")
        }
        return data
    }

    static func json(_ data: Data, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// The HTTP response of a generation; `ticket` (its place in `RequestAdmission`) is given back once the
    /// answer is complete: at once for a JSON body, when the stream ends (or is dropped unsent) for SSE.
    static func respond(_ r: ServingResponse, holding ticket: RequestAdmission.Ticket) -> Response {
        switch r {
        case .json(let data):
            ticket.release()
            return json(data)
        case .stream(let produce):
            return Response(
                status: .ok,
                headers: [.contentType: ServerSentEvents.contentType, .cacheControl: "no-cache"],
                body: ResponseBody { writer in
                    defer { ticket.release() }
                    await produce { bytes in try await writer.write(ByteBuffer(bytes: bytes)) }
                    try await writer.finish(nil)
                })
        }
    }
}
