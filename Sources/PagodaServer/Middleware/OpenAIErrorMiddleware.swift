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
        return Response(
            status: HTTPResponse.Status(code: error.status),
            headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// `--api-key`: every `/v1/*` route needs `Authorization: Bearer <key>` (as in vLLM).
struct APIKeyMiddleware<Context: RequestContext>: RouterMiddleware {
    let apiKey: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.uri.path.hasPrefix("/v1") {
            let given = request.headers[.authorization]
            guard given == "Bearer \(apiKey)" else {
                throw OpenAIError.unauthorized(given == nil ? "missing API key: send 'Authorization: Bearer <key>'" : "invalid API key")
            }
        }
        return try await next(request, context)
    }
}
