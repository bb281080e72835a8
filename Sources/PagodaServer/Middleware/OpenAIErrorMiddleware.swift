import Foundation
import Hummingbird
import PagodaOpenAI

/// Turns every error escaping a route (ours, Hummingbird's 404/413, anything else) into an
/// OpenAI error body with the matching status, so clients always get `{"error": {...}}`.
struct OpenAIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as OpenAIError {
            return Self.response(error)
        } catch let error as HTTPResponseError {
            let status = Int(error.status.code)
            let message: String
            switch status {
            case 404: message = "Not Found: \(request.method) \(request.uri.path)"
            case 405: message = "Method Not Allowed: \(request.method) \(request.uri.path)"
            case 413: message = "request body too large"
            default: message = "\(error)"
            }
            return Self.response(OpenAIError(status: status, message: message))
        } catch {
            return Self.response(.internalError("\(error)"))
        }
    }

    static func response(_ error: OpenAIError) -> Response {
        let body = (try? OpenAIJSON.encode(error.body)) ?? Data()
        var headers: HTTPFields = [.contentType: "application/json"]
        if let s = error.retryAfterSeconds { headers[.retryAfter] = String(s) }
        return Response(
            status: HTTPResponse.Status(code: error.status), headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// `--api-key`: every route that costs work (`/v1/*`, as in vLLM, and `/tokenize`, `/detokenize`) needs
/// `Authorization: Bearer <key>`; with `allRoutes` (`--api-key-all-routes`) every route does.
struct APIKeyMiddleware<Context: RequestContext>: RouterMiddleware {
    let apiKey: String
    let allRoutes: Bool

    /// Judged on the path's non-empty components, as the router matches them: `//tokenize` and `/tokenize/`
    /// reach the same handler as `/tokenize` and need the key as well.
    static func costsWork(_ path: String) -> Bool {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        guard let first = parts.first else { return false }
        return first == "v1" || (parts.count == 1 && (first == "tokenize" || first == "detokenize"))
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if allRoutes || Self.costsWork(request.uri.path) {
            let given = request.headers[.authorization]
            guard let given, Self.equalInConstantTime(given, "Bearer \(apiKey)") else {
                throw OpenAIError.unauthorized(given == nil ? "missing API key: send 'Authorization: Bearer <key>'" : "invalid API key")
            }
        }
        return try await next(request, context)
    }

    /// Compares without stopping at the first differing byte, so response timing does not reveal the key.
    static func equalInConstantTime(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var diff = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) { diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0) }
        return diff == 0
    }
}
