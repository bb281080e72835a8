import Foundation
import Logging
import XCTest
import PagodaEngine
import PagodaEngineTestSupport
import PagodaOpenAI
@testable import PagodaServer

/// The request path without HTTP: OpenAIServing over the real engine RPC (a socket pair) to the
/// test engine loop, with the character tokenizer. The test engine answers a prompt ending in
/// character c with c+1, c+2, ... so expected texts are easy to state ("a" -> "bcd...").
final class OpenAIServingTests: XCTestCase {
    var engineConnection: EngineRPCConnection!
    var backend: TestEngineBackend!
    var serving: OpenAIServing!

    override func setUpWithError() throws {
        backend = TestEngineBackend(stepInterval: 0.001)
        let h = EngineHandshake(model: "/models/test", numBlocks: 64, blockSize: 16, maxModelLen: 64, vocabSize: 0x11_0000,
                                eosTokenIds: [0], pid: 1)
        let (rpc, engine) = try backend.serveOverRPC(h)
        engineConnection = engine
        let client = AsyncEngineClient(rpc: rpc)
        var config = ServerConfig(servedModelNames: ["test-model", "alias"], modelPath: "/models/test")
        config.disableLogRequests = true
        serving = OpenAIServing(config: config, tokenizer: CharTokenizer(), engine: client,
                                metrics: ServerMetrics(modelName: "test-model"), logger: Logger(label: "test"))
        client.start()
    }

    override func tearDown() {
        (serving.engine as! AsyncEngineClient).rpc.shutdown()
    }

    func json(_ r: ServingResponse) throws -> [String: Any] {
        guard case .json(let data) = r else { XCTFail("expected JSON"); return [:] }
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    func events(_ r: ServingResponse) async throws -> [String] {
        guard case .stream(let produce) = r else { XCTFail("expected a stream"); return [] }
        final class Box: @unchecked Sendable { var bytes: [UInt8] = [] }
        let box = Box()
        await produce { box.bytes += $0 }
        var parser = ServerSentEventParser()
        return parser.feed(box.bytes)
    }

    func openAIError(_ body: String, chat: Bool = false) async -> OpenAIError? {
        do {
            _ = chat ? try await serving.chatCompletions(Data(body.utf8)) : try await serving.completions(Data(body.utf8))
            return nil
        } catch { return error as? OpenAIError }
    }

    func testCompletionTextUsageAndFinishReason() async throws {
        let obj = try json(try await serving.completions(Data(#"{"model": "test-model", "prompt": "a", "max_tokens": 4}"#.utf8)))
        let choice = (obj["choices"] as! [[String: Any]])[0]
        XCTAssertEqual(choice["text"] as? String, "bcde")
        XCTAssertEqual(choice["finish_reason"] as? String, "length")
        let usage = obj["usage"] as! [String: Any]
        XCTAssertEqual(usage["prompt_tokens"] as? Int, 1); XCTAssertEqual(usage["completion_tokens"] as? Int, 4)
        XCTAssertEqual(obj["model"] as? String, "test-model")
        XCTAssertTrue((obj["id"] as? String)?.hasPrefix("cmpl-") ?? false)
    }

    func testMultiplePromptsAndNGiveEveryChoiceItsIndex() async throws {
        let obj = try json(try await serving.completions(Data(#"{"prompt": ["a", "k"], "n": 2, "max_tokens": 2, "echo": true}"#.utf8)))
        let choices = (obj["choices"] as! [[String: Any]]).sorted { ($0["index"] as! Int) < ($1["index"] as! Int) }
        XCTAssertEqual(choices.map { $0["index"] as! Int }, [0, 1, 2, 3])
        XCTAssertEqual(choices.map { $0["text"] as! String }, ["abc", "abc", "klm", "klm"])
        XCTAssertEqual((obj["usage"] as! [String: Any])["completion_tokens"] as? Int, 8)
    }

    func testStopStringsCutTheTextAndAbortTheEngineRequest() async throws {
        let obj = try json(try await serving.completions(Data(#"{"prompt": "a", "max_tokens": 30, "stop": ["de", "zz"]}"#.utf8)))
        let choice = (obj["choices"] as! [[String: Any]])[0]
        XCTAssertEqual(choice["text"] as? String, "bc")
        XCTAssertEqual(choice["finish_reason"] as? String, "stop")
        XCTAssertEqual(choice["stop_reason"] as? String, "de")
        XCTAssertTrue(waitUntil { self.backend.numRunning == 0 })
        XCTAssertEqual(backend.aborted.count, 1, "the engine request was aborted, not run to max_tokens")

        let incl = try json(try await serving.completions(Data(#"{"prompt": "a", "max_tokens": 30, "stop": "de", "include_stop_str_in_output": true}"#.utf8)))
        XCTAssertEqual((incl["choices"] as! [[String: Any]])[0]["text"] as? String, "bcde")
    }

    func testStreamingCompletionHoldsBackPossibleStopPrefixes() async throws {
        let evs = try await events(try await serving.completions(Data(
            #"{"prompt": "a", "max_tokens": 10, "stream": true, "stop": "efg", "stream_options": {"include_usage": true}}"#.utf8)))
        XCTAssertEqual(evs.last, "[DONE]")
        let chunks = evs.dropLast().map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        let texts = chunks.compactMap { ($0["choices"] as! [[String: Any]]).first?["text"] as? String }
        XCTAssertEqual(texts.joined(), "bcd", "text before the stop string, never a piece of it")
        let finish = chunks.compactMap { ($0["choices"] as! [[String: Any]]).first?["finish_reason"] as? String }
        XCTAssertEqual(finish, ["stop"])
        let usage = chunks.last!["usage"] as! [String: Any]
        XCTAssertEqual((chunks.last!["choices"] as! [Any]).count, 0)
        XCTAssertEqual(usage["prompt_tokens"] as? Int, 1)
        XCTAssertEqual(usage["completion_tokens"] as? Int, 6, "tokens through the stop string count")
    }

    func testChatStreamStartsWithTheRoleAndEndsWithDone() async throws {
        let evs = try await events(try await serving.chatCompletions(Data(
            #"{"model": "alias", "messages": [{"role": "user", "content": "x"}], "max_tokens": 3, "stream": true, "n": 2}"#.utf8)))
        XCTAssertEqual(evs.last, "[DONE]")
        let chunks = evs.dropLast().map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        XCTAssertTrue(chunks.allSatisfy { $0["object"] as? String == "chat.completion.chunk" })
        var text: [Int: String] = [:]
        var roles = 0
        for c in chunks {
            for choice in c["choices"] as! [[String: Any]] {
                let delta = choice["delta"] as! [String: Any]
                if delta["role"] as? String == "assistant" { roles += 1 }
                text[choice["index"] as! Int, default: ""] += delta["content"] as? String ?? ""
            }
        }
        XCTAssertEqual(roles, 2)
        // The prompt "user: x\nassistant:" ends in ":" (58), so the answer is ";<=".
        XCTAssertEqual(text, [0: ";<=", 1: ";<="])
    }

    func testChatLogprobs() async throws {
        let obj = try json(try await serving.chatCompletions(Data(
            #"{"messages": [{"role": "user", "content": "x"}], "max_tokens": 2, "logprobs": true, "top_logprobs": 2}"#.utf8)))
        let choice = (obj["choices"] as! [[String: Any]])[0]
        let content = (choice["logprobs"] as! [String: Any])["content"] as! [[String: Any]]
        XCTAssertEqual(content.count, 2)
        XCTAssertEqual(content[0]["token"] as? String, ";")
        XCTAssertEqual(content[0]["logprob"] as? Double, -0.5)
        XCTAssertEqual((content[0]["top_logprobs"] as! [Any]).count, 2)
    }

    func testInvalidRequestsAre400sAnd404s() async throws {
        let e1 = await openAIError(#"{"model": "other", "prompt": "a"}"#)
        XCTAssertEqual(e1?.status, 404); XCTAssertEqual(e1?.param, "model")
        let e2 = await openAIError(#"{"prompt": "a", "max_tokens": 64}"#)
        XCTAssertEqual(e2?.status, 400); XCTAssertEqual(e2?.param, "max_tokens")
        XCTAssertTrue(e2?.message.contains("maximum context length is 64") ?? false)
        do { let e = await openAIError(#"{"prompt": "a", "temperature": -1}"#); XCTAssertEqual(e?.param, "temperature"); XCTAssertEqual(e?.status, 400) }
        do { let e = await openAIError(#"{"prompt": "a", "n": 0}"#); XCTAssertEqual(e?.param, "n"); XCTAssertEqual(e?.status, 400) }
        do { let e = await openAIError(#"{"prompt": "a", "top_p": 0}"#); XCTAssertEqual(e?.param, "top_p"); XCTAssertEqual(e?.status, 400) }
        do { let e = await openAIError(#"{"prompt": "a", "logprobs": 21}"#); XCTAssertEqual(e?.param, "logprobs"); XCTAssertEqual(e?.status, 400) }
        do { let e = await openAIError(#"{"prompt": ""}"#); XCTAssertEqual(e?.param, "prompt"); XCTAssertEqual(e?.status, 400) }
        do { let e = await openAIError(#"{"prompt": [-1]}"#); XCTAssertEqual(e?.param, "prompt"); XCTAssertEqual(e?.status, 400) }
        do { let e = await openAIError(#"{"messages": [], "max_tokens": 1}"#, chat: true); XCTAssertEqual(e?.param, "messages"); XCTAssertEqual(e?.status, 400) }
        do { let e = await openAIError(#"{"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}"#, chat: true); XCTAssertEqual(e?.param, "top_logprobs"); XCTAssertEqual(e?.status, 400) }
        // The engine is untouched by all of that.
        XCTAssertEqual(backend.numRunning, 0)
    }

    func testEngineDeathFailsInFlightRequestsAndHealth() async throws {
        let died = expectation(description: "death reported")
        (serving.engine as! AsyncEngineClient).onDeath { _ in died.fulfill() }
        let task = Task { try await self.serving.completions(Data(#"{"prompt": "a", "max_tokens": 60}"#.utf8)) }
        XCTAssertTrue(waitUntil { self.backend.numRunning == 1 })
        engineConnection.close()
        await fulfillment(of: [died], timeout: 5)
        do {
            _ = try await task.value
            XCTFail("expected the in-flight request to fail")
        } catch let e as OpenAIError {
            XCTAssertEqual(e.status, 500)
            XCTAssertTrue(e.message.contains("engine core"), e.message)
        }
        XCTAssertNotNil(serving.engine.dead)
        let after = await openAIError(#"{"prompt": "a"}"#)
        XCTAssertEqual(after?.status, 503)
    }

    func testTokenizeDetokenizeModelsLoadMetrics() async throws {
        let t = try JSONSerialization.jsonObject(with: serving.tokenize(Data(#"{"prompt": "hey"}"#.utf8))) as! [String: Any]
        XCTAssertEqual(t["tokens"] as? [Int], [104, 101, 121]); XCTAssertEqual(t["count"] as? Int, 3); XCTAssertEqual(t["max_model_len"] as? Int, 64)
        let d = try JSONSerialization.jsonObject(with: serving.detokenize(Data(#"{"tokens": [104, 105]}"#.utf8))) as! [String: Any]
        XCTAssertEqual(d["prompt"] as? String, "hi")
        let m = try JSONSerialization.jsonObject(with: serving.models()) as! [String: Any]
        XCTAssertEqual((m["data"] as! [[String: Any]]).map { $0["id"] as! String }, ["test-model", "alias"])
        _ = try await serving.completions(Data(#"{"prompt": "a", "max_tokens": 3}"#.utf8))
        let text = serving.metrics.exposition()
        XCTAssertTrue(text.contains(#"vllm:generation_tokens_total{model_name="test-model",engine="0"} 3"#), text)
        XCTAssertTrue(text.contains("vllm:num_requests_running"))
        XCTAssertTrue(text.contains("vllm:time_to_first_token_seconds_bucket"))
        XCTAssertTrue(text.contains(#"vllm:request_success_total{model_name="test-model",engine="0",finished_reason="length"} 1"#), text)
        let load = try JSONSerialization.jsonObject(with: serving.load()) as! [String: Any]
        XCTAssertEqual(load["num_requests_running"] as? Int, 0)
    }

    func waitUntil(_ timeout: Double = 5, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline { if condition() { return true }; usleep(2_000) }
        return condition()
    }
}
