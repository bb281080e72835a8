import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// Sends one streaming request to an OpenAI-compatible endpoint and times it token chunk by token chunk
/// (vLLM's `async_request_openai_completions` / `async_request_openai_chat_completions`).
///
/// TTFT is send → first chunk that carries a choice; every later choice chunk adds an inter-token latency; the
/// request ends at its last choice chunk (the usage chunk after it carries no token). A request succeeds only on
/// HTTP 200 with at least one choice chunk and no error event; anything else is a failure with its reason.
public struct ServeRequestFunc: Sendable {
    public let backend: ServeBackend
    public let client: HTTPClient
    /// `Authorization: Bearer` value (`ServeOptions.apiKey`); nil: none.
    public let apiKey: String?

    public init(backend: ServeBackend, client: HTTPClient, apiKey: String?) {
        self.backend = backend
        self.client = client
        self.apiKey = apiKey
    }

    /// The JSON body for `input`.
    public func payload(_ input: RequestFuncInput) -> [String: Any] {
        var body: [String: Any] = ["model": input.model, "stream": true, "stream_options": ["include_usage": true]]
        switch backend {
        case .openai:
            body["prompt"] = input.prompt
            body["max_tokens"] = input.outputLen
        case .openaiChat:
            body["messages"] = [["role": "user", "content": input.prompt]]
            body["max_completion_tokens"] = input.outputLen
        }
        if input.ignoreEOS { body["ignore_eos"] = true }
        for (key, value) in input.extraBody { body[key] = value }
        return body
    }

    public func callAsFunction(_ input: RequestFuncInput) async -> RequestFuncOutput {
        var output = RequestFuncOutput()
        output.promptLen = input.promptLen
        let start = benchNow()
        output.startTime = start
        do {
            var request = HTTPClientRequest(url: input.apiURL)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
            if !input.requestId.isEmpty { request.headers.add(name: "x-request-id", value: input.requestId) }
            let body = try JSONSerialization.data(withJSONObject: payload(input))
            request.body = .bytes(ByteBuffer(bytes: body))

            let response = try await executeResendingOnClosedConnection(request)
            guard response.status == .ok else {
                var text = ""
                for try await piece in response.body {
                    if text.utf8.count < 2048 { text += String(buffer: piece) }
                }
                output.error = "HTTP \(response.status.code) \(response.status.reasonPhrase): \(Self.errorMessage(text))"
                return output
            }
            var parser = ServeStreamParser()
            var mostRecent = start
            var firstChunk = false
            var text = ""
            func handle(_ payloads: [String]) throws {
                for payload in payloads where payload != "[DONE]" {
                    let now = benchNow()
                    guard let object = try JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any]
                    else { continue }
                    if let error = object["error"] {
                        throw ServeRequestError(message: "error event in the stream: \(Self.describe(error))")
                    }
                    if let choices = object["choices"] as? [Any], let choice = choices.first as? [String: Any] {
                        if firstChunk {
                            output.itl.append(now - mostRecent)
                        } else {
                            firstChunk = true
                            output.ttft = now - start
                        }
                        mostRecent = now
                        switch backend {
                        case .openai: text += choice["text"] as? String ?? ""
                        case .openaiChat: text += (choice["delta"] as? [String: Any])?["content"] as? String ?? ""
                        }
                    } else if let usage = object["usage"] as? [String: Any] {
                        if let completion = usage["completion_tokens"] as? Int { output.outputTokens = completion }
                        if let prompt = usage["prompt_tokens"] as? Int { output.promptLen = prompt }
                    }
                }
            }
            for try await piece in response.body {
                try handle(parser.add(piece.readableBytesView))
            }
            try handle(parser.finish())
            output.generatedText = text
            output.latency = mostRecent - start
            if firstChunk {
                output.success = true
            } else {
                output.error = "Never received a valid chunk to calculate TTFT. This response will be marked as failed!"
            }
        } catch let error as ServeRequestError {
            output.success = false
            output.error = error.message
        } catch {
            output.success = false
            output.error = Self.describe(error)
        }
        return output
    }

    /// Sends `request`; when the pooled connection it went out on turns out closed by the server before any
    /// response byte (llama-server and others close idle keep-alive connections, and a request can leave just as
    /// the close arrives), the server never read it, so it goes again on a new connection — at most `maxResends`
    /// times (each resend may draw another pooled connection the server closed at the same moment). Other
    /// failures are the request's.
    func executeResendingOnClosedConnection(_ request: HTTPClientRequest, maxResends: Int = 8) async throws -> HTTPClientResponse {
        var resends = 0
        while true {
            do {
                return try await client.execute(request, timeout: .hours(6))
            } catch  where Self.closedBeforeResponse(error) && resends < maxResends {
                resends += 1
            }
        }
    }

    /// Whether `error` says the connection was gone before any response byte, by whichever side noticed first:
    /// the read end (`remoteConnectionClosed`), a write onto the already closed channel (`ioOnClosedChannel`,
    /// seen against llama-server at 2 of 64 requests), or the peer's reset (ECONNRESET, EPIPE).
    static func closedBeforeResponse(_ error: Error) -> Bool {
        switch error {
        case let e as HTTPClientError: return e == .remoteConnectionClosed
        case let e as ChannelError: return e == .ioOnClosedChannel || e == .alreadyClosed || e == .eof
        case let e as IOError: return e.errnoCode == ECONNRESET || e.errnoCode == EPIPE
        default: return false
        }
    }

    /// The `message` of an OpenAI error body, or the body itself.
    static func errorMessage(_ body: String) -> String {
        if let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
            let error = object["error"]
        {
            return describe(error)
        }
        let trimmed = body.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.isEmpty ? "(empty body)" : String(trimmed.prefix(500))
    }

    static func describe(_ error: Any) -> String {
        if let object = error as? [String: Any], let message = object["message"] as? String { return message }
        if let string = error as? String { return string }
        return String(describing: error)
    }
}

/// A failure found inside an otherwise successful HTTP exchange.
struct ServeRequestError: Error {
    let message: String
}
