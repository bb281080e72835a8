import Foundation
import PagodaOpenAI
import XCTest

/// The OpenAI wire types: request decoding (every prompt form, vLLM extras, errors naming the
/// parameter), response encoding, error bodies and SSE framing/parsing.
final class OpenAIWireTests: XCTestCase {
    func decode<T: Decodable>(_ t: T.Type, _ json: String) throws -> T {
        try OpenAIJSON.decodeRequest(t, from: Data(json.utf8))
    }

    func testCompletionPromptForms() throws {
        XCTAssertEqual(try decode(CompletionRequest.self, #"{"prompt": "hi"}"#).prompt, .text("hi"))
        XCTAssertEqual(try decode(CompletionRequest.self, #"{"prompt": ["a", "b"]}"#).prompt, .texts(["a", "b"]))
        XCTAssertEqual(try decode(CompletionRequest.self, #"{"prompt": [1, 2, 3]}"#).prompt, .tokens([1, 2, 3]))
        XCTAssertEqual(try decode(CompletionRequest.self, #"{"prompt": [[1], [2, 3]]}"#).prompt, .tokenLists([[1], [2, 3]]))
    }

    func testVLLMExtraFieldsDecode() throws {
        let r = try decode(
            CompletionRequest.self,
            """
            {"model": "m", "prompt": "x", "top_k": 5, "min_p": 0.1, "repetition_penalty": 1.2, "min_tokens": 2,
             "ignore_eos": true, "stop_token_ids": [7], "include_stop_str_in_output": true, "skip_special_tokens": false,
             "stop": "END", "seed": 42, "stream": true, "stream_options": {"include_usage": true}, "unknown_field": 1}
            """)
        XCTAssertEqual(r.topK, 5); XCTAssertEqual(r.minP, 0.1); XCTAssertEqual(r.repetitionPenalty, 1.2)
        XCTAssertEqual(r.minTokens, 2); XCTAssertEqual(r.ignoreEos, true); XCTAssertEqual(r.stopTokenIds, [7])
        XCTAssertEqual(r.includeStopStrInOutput, true); XCTAssertEqual(r.skipSpecialTokens, false)
        XCTAssertEqual(r.stop?.values, ["END"]); XCTAssertEqual(r.seed, 42); XCTAssertEqual(r.streamOptions?.includeUsage, true)
        let c = try decode(
            ChatCompletionRequest.self,
            """
            {"messages": [{"role": "user", "content": "hi"}], "logprobs": true, "top_logprobs": 3,
             "chat_template_kwargs": {"enable_thinking": false}, "add_generation_prompt": false, "stop": ["a", "b"]}
            """)
        XCTAssertEqual(c.messages.first?["content"], .string("hi"))
        XCTAssertEqual(c.chatTemplateKwargs?["enable_thinking"], .bool(false))
        XCTAssertEqual(c.addGenerationPrompt, false); XCTAssertEqual(c.topLogprobs, 3); XCTAssertEqual(c.stop?.values, ["a", "b"])
    }

    func testDecodingErrorsAre400sNamingTheParameter() {
        func error(_ json: String) -> OpenAIError? {
            do { _ = try decode(CompletionRequest.self, json); return nil } catch { return error as? OpenAIError }
        }
        let bad = error(#"{"prompt": "x", "max_tokens": "ten"}"#)
        XCTAssertEqual(bad?.status, 400); XCTAssertEqual(bad?.param, "max_tokens"); XCTAssertEqual(bad?.type, "BadRequestError")
        XCTAssertEqual(error(#"{"prompt": {"a": 1}}"#)?.param, "prompt")
        let malformed = error(#"{"prompt": "x""#)
        XCTAssertEqual(malformed?.status, 400)
        XCTAssertTrue(malformed?.message.contains("malformed JSON") ?? false, malformed?.message ?? "")
        XCTAssertEqual(error("[1, 2]")?.status, 400)
        XCTAssertEqual(error("")?.status, 400)
        let chatMissing = { () -> OpenAIError? in
            do { _ = try self.decode(ChatCompletionRequest.self, #"{"model": "m"}"#); return nil } catch { return error as? OpenAIError }
        }()
        XCTAssertEqual(chatMissing?.param, "messages")
    }

    func testErrorBodyHasAllFourFields() throws {
        let data = try OpenAIJSON.encode(OpenAIError.notFound("The model `x` does not exist.", param: "model").body)
        let obj = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let e = obj["error"] as! [String: Any]
        XCTAssertEqual(e["message"] as? String, "The model `x` does not exist.")
        XCTAssertEqual(e["type"] as? String, "NotFoundError")
        XCTAssertEqual(e["param"] as? String, "model")
        XCTAssertEqual(e["code"] as? Int, 404)
        let noParam = try JSONSerialization.jsonObject(with: OpenAIJSON.encode(OpenAIError.unauthorized("no").body)) as! [String: Any]
        XCTAssertTrue((noParam["error"] as! [String: Any]).keys.contains("param"), "param is present as null")
    }

    func testResponsesEncodeOpenAIShapes() throws {
        let r = CompletionResponse(
            id: "cmpl-1", created: 1, model: "m",
            choices: [CompletionChoice(index: 0, text: "hi", finishReason: "stop", stopReason: .text("\n"))],
            usage: UsageInfo(promptTokens: 3, completionTokens: 2))
        let obj = try JSONSerialization.jsonObject(with: OpenAIJSON.encode(r)) as! [String: Any]
        XCTAssertEqual(obj["object"] as? String, "text_completion")
        let choice = (obj["choices"] as! [[String: Any]])[0]
        XCTAssertEqual(choice["finish_reason"] as? String, "stop")
        XCTAssertEqual(choice["stop_reason"] as? String, "\n")
        XCTAssertTrue(choice["logprobs"] is NSNull)
        let usage = obj["usage"] as! [String: Any]
        XCTAssertEqual(usage["total_tokens"] as? Int, 5)
    }

    func testSSEFramingAndParsing() throws {
        let frame = ServerSentEvents.frame(Array(#"{"a":1}"#.utf8))
        XCTAssertEqual(String(decoding: frame, as: UTF8.self), "data: {\"a\":1}\n\n")
        var parser = ServerSentEventParser()
        let stream = frame + ServerSentEvents.done
        // Fed in awkward pieces, it still yields whole events in order.
        var events: [String] = []
        for chunk in stride(from: 0, to: stream.count, by: 3).map({ Array(stream[$0..<min($0 + 3, stream.count)]) }) {
            events += parser.feed(chunk)
        }
        XCTAssertEqual(events, [#"{"a":1}"#, "[DONE]"])
        XCTAssertEqual(parser.feed(Array(": comment\r\ndata: x\r\ndata: y\r\n\r\n".utf8)), ["x\ny"])
    }
}
