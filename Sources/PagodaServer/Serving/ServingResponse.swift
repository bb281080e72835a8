import Foundation

/// What an endpoint answers, independent of the HTTP library: a whole JSON body, or an SSE
/// stream that writes its frames through the given function.
public enum ServingResponse: Sendable {
    case json(Data)
    case stream(@Sendable (_ write: ([UInt8]) async throws -> Void) async -> Void)
}
