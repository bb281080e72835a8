/// An error as OpenAI (and vLLM) send it: `{"error": {"message", "type", "param", "code"}}`, with
/// the HTTP status it goes out with. `type` follows vLLM ("BadRequestError", "NotFoundError", ...).
public struct OpenAIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var message: String
    public var type: String
    public var param: String?
    /// Seconds the client should wait before retrying (the `Retry-After` header of a 429 or 503).
    public var retryAfterSeconds: Int?

    public init(status: Int, message: String, type: String? = nil, param: String? = nil, retryAfterSeconds: Int? = nil) {
        self.status = status; self.message = message; self.param = param; self.retryAfterSeconds = retryAfterSeconds
        self.type = type ?? OpenAIError.typeName(for: status)
    }

    public var description: String { "\(status) \(type): \(message)" }

    public static func badRequest(_ message: String, param: String? = nil) -> OpenAIError {
        OpenAIError(status: 400, message: message, param: param)
    }
    public static func notFound(_ message: String, param: String? = nil) -> OpenAIError {
        OpenAIError(status: 404, message: message, param: param)
    }
    public static func unauthorized(_ message: String) -> OpenAIError { OpenAIError(status: 401, message: message) }
    public static func payloadTooLarge(_ message: String) -> OpenAIError { OpenAIError(status: 413, message: message) }
    public static func serviceUnavailable(_ message: String) -> OpenAIError { OpenAIError(status: 503, message: message) }
    public static func tooManyRequests(_ message: String, retryAfterSeconds: Int) -> OpenAIError {
        OpenAIError(status: 429, message: message, retryAfterSeconds: retryAfterSeconds)
    }
    public static func internalError(_ message: String) -> OpenAIError { OpenAIError(status: 500, message: message) }

    public static func typeName(for status: Int) -> String {
        switch status {
        case 400: return "BadRequestError"
        case 401: return "AuthenticationError"
        case 403: return "PermissionDeniedError"
        case 404: return "NotFoundError"
        case 405: return "MethodNotAllowedError"
        case 413: return "RequestEntityTooLargeError"
        case 422: return "UnprocessableEntityError"
        case 429: return "RateLimitError"
        case 503: return "ServiceUnavailableError"
        default: return status >= 500 ? "InternalServerError" : "BadRequestError"
        }
    }

    /// The body: `{"error": {...}}`.
    public var body: ErrorResponse { ErrorResponse(error: .init(message: message, type: type, param: param, code: status)) }
}

/// Wire form of an error (`{"error": {...}}`).
public struct ErrorResponse: Sendable, Codable, Equatable {
    public struct Detail: Sendable, Codable, Equatable {
        public var message: String
        public var type: String
        public var param: String?
        public var code: Int?
        public init(message: String, type: String, param: String?, code: Int?) {
            self.message = message; self.type = type; self.param = param; self.code = code
        }
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(message, forKey: .message)
            try c.encode(type, forKey: .type)
            try c.encode(param, forKey: .param)  // explicit null
            try c.encode(code, forKey: .code)
        }
        enum CodingKeys: String, CodingKey { case message, type, param, code }
    }
    public var error: Detail
    public init(error: Detail) { self.error = error }
}
