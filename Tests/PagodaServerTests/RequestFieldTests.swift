import Foundation
import Logging
import XCTest
import PagodaEngine
import PagodaEngineTestSupport
import PagodaOpenAI
@testable import PagodaServer

/// Every request field is implemented, rejected with a 400 naming it, or accepted as metadata;
/// unknown fields are accepted (and logged). Runs `OpenAIServing` over the engine RPC against the
/// test engine, which answers a prompt ending in c with c+1, c+2, ... (character tokenizer).
final class RequestFieldTests: XCTestCase {
    var backend: TestEngineBackend!
    var serving: OpenAIServing!
    let logs = CapturedLogs()

    override func setUpWithError() throws {
        backend = TestEngineBackend(stepInterval: 0.001)
        let h = EngineHandshake(model: "/models/test", numBlocks: 64, blockSize: 16, maxModelLen: 64, vocabSize: 0x11_0000,
                                eosTokenIds: [0], pid: 1)
        let client = AsyncEngineClient(rpc: try backend.serveOverRPC(h).client)
        var config = ServerConfig(servedModelNames: ["test-model"], modelPath: "/models/test")
        config.disableLogRequests = true
        serving = OpenAIServing(config: config, tokenizer: CharTokenizer(), engine: client,
                                metrics: ServerMetrics(modelName: "test-model"),
                                logger: Logger(label: "test", factory: { [logs] _ in CapturingLogHandler(logs: logs) }))
        client.start()
    }

    override func tearDown() { (serving.engine as! AsyncEngineClient).rpc.shutdown() }

    /// Completions body with `extra` merged in (JSON fragments, without braces).
    private func completion(_ extra: String) -> String { #"{"prompt": "a", "max_tokens": 2"# + (extra.isEmpty ? "" : ", " + extra) + "}" }
    private func chat(_ extra: String) -> String {
        #"{"messages": [{"role": "user", "content": "a"}], "max_tokens": 2"# + (extra.isEmpty ? "" : ", " + extra) + "}"
    }

    private func send(_ body: String, chat: Bool) async throws -> ServingResponse {
        chat ? try await serving.chatCompletions(Data(body.utf8)) : try await serving.completions(Data(body.utf8))
    }

    /// The OpenAI error of a body (nil when it succeeds; a stream is drained first).
    private func error(_ body: String, chat: Bool = false) async -> OpenAIError? {
        do {
            if case .stream(let produce) = try await send(body, chat: chat) { await produce { _ in } }
            return nil
        } catch let e as OpenAIError {
            return e
        } catch {
            XCTFail("not an OpenAIError: \(error)"); return nil
        }
    }

    private func json(_ body: String, chat: Bool = false) async throws -> [String: Any] {
        guard case .json(let data) = try await send(body, chat: chat) else { XCTFail("expected JSON"); return [:] }
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    private func assertRejected(_ fragment: String, param: String, chat: Bool, file: StaticString = #filePath, line: UInt = #line) async {
        let body = chat ? self.chat(fragment) : completion(fragment)
        let e = await error(body, chat: chat)
        XCTAssertEqual(e?.status, 400, body, file: file, line: line)
        XCTAssertEqual(e?.param, param, body, file: file, line: line)
    }

    private func assertAccepted(_ fragment: String, chat: Bool, file: StaticString = #filePath, line: UInt = #line) async {
        let body = chat ? self.chat(fragment) : completion(fragment)
        let e = await error(body, chat: chat)
        XCTAssertNil(e, "\(body): \(e.map { "\($0)" } ?? "")", file: file, line: line)
    }

    // MARK: - logit_bias

    func testLogitBiasReachesTheEngineInTokenOrder() async throws {
        _ = try await json(completion(#""logit_bias": {"98": 2.5, "7": -100, "1114111": 100}"#))
        XCTAssertEqual(backend.addedRequests.last?.sampling.logitBias,
                       [LogitBias(tokenId: 7, bias: -100), LogitBias(tokenId: 98, bias: 2.5), LogitBias(tokenId: 0x10FFFF, bias: 100)])
        _ = try await json(chat(#""logit_bias": {"5": 1}"#), chat: true)
        XCTAssertEqual(backend.addedRequests.last?.sampling.logitBias, [LogitBias(tokenId: 5, bias: 1)])
        _ = try await json(completion(""))
        XCTAssertEqual(backend.addedRequests.last?.sampling.logitBias, [])
    }

    func testBadLogitBiasIsA400NamingIt() async {
        for chat in [false, true] {
            await assertRejected(#""logit_bias": {"5": 100.5}"#, param: "logit_bias", chat: chat)
            await assertRejected(#""logit_bias": {"5": -101}"#, param: "logit_bias", chat: chat)
            await assertRejected(#""logit_bias": {"1114112": 1}"#, param: "logit_bias", chat: chat)
            await assertRejected(#""logit_bias": {"-1": 1}"#, param: "logit_bias", chat: chat)
            await assertRejected(#""logit_bias": {"abc": 1}"#, param: "logit_bias", chat: chat)
            await assertRejected(#""logit_bias": {"5": "x"}"#, param: "logit_bias[5]", chat: chat)  // the decoder's path of a bad value
        }
    }

    // MARK: - rejected fields

    func testUnsupportedFieldsAreA400NamingTheField() async {
        let both: [(String, String)] = [
            // Structured outputs are served; a constraint Pagoda cannot compile is a 400 naming its field.
            (#""response_format": {"type": "json_schema", "json_schema": {"name": "x"}}"#, "response_format"),
            (#""guided_json": {"type": "string", "pattern": "a+"}"#, "guided_json"),
            (#""guided_regex": "(a""#, "guided_regex"),
            (#""guided_choice": []"#, "guided_choice"),
            (#""guided_grammar": "root ::= x""#, "guided_grammar"),
            (#""structured_outputs": {"regex": "a(?=b)"}"#, "structured_outputs"),
            (#""guided_regex": "a", "guided_choice": ["a"]"#, "guided_choice"),
            (#""allowed_token_ids": [1, 2]"#, "allowed_token_ids"),
            (#""bad_words": ["x"]"#, "bad_words"),
            (#""prompt_logprobs": 21"#, "prompt_logprobs"),
            (#""use_beam_search": true"#, "use_beam_search"),
            (#""length_penalty": 0.5"#, "length_penalty"),
            (#""spaces_between_special_tokens": false"#, "spaces_between_special_tokens"),
            (#""logits_processors": ["x"]"#, "logits_processors"),
            (#""priority": 3"#, "priority"),
            (#""return_tokens_as_token_ids": true"#, "return_tokens_as_token_ids"),
            (#""cache_salt": "s""#, "cache_salt"),
            (#""kv_transfer_params": {"do_remote_prefill": true}"#, "kv_transfer_params"),  // names no producer
            (#""stream_options": {"include_usage": true}"#, "stream_options"),
        ]
        for chat in [false, true] {
            for (fragment, param) in both { await assertRejected(fragment, param: param, chat: chat) }
        }
        let chatOnly: [(String, String)] = [
            // Tools without tool_choice mean "auto", which needs --enable-auto-tool-choice (vLLM's 400).
            (#""tools": [{"type": "function", "function": {"name": "f"}}]"#, "tool_choice"),
            (#""tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto""#, "tool_choice"),
            (#""tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": {"type": "function", "function": {"name": "g"}}"#, "tool_choice"),
            (#""tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"format": "date"}}}}}], "tool_choice": "required""#, "tools"),
            (#""tools": [{"type": "function"}], "tool_choice": "none""#, "tools"),
            (#""tool_choice": "auto""#, "tool_choice"),
            (#""tool_choice": "sometimes""#, "tool_choice"),
            (#""functions": [{"name": "f"}]"#, "functions"),
            (#""function_call": "auto""#, "function_call"),
            (#""modalities": ["text", "audio"]"#, "modalities"),
            (#""audio": {"voice": "alloy", "format": "wav"}"#, "audio"),
            (#""prediction": {"type": "content", "content": "x"}"#, "prediction"),
            (#""reasoning_effort": "low""#, "reasoning_effort"),
            (#""echo": true"#, "echo"),
            (#""top_logprobs": 21, "logprobs": true"#, "top_logprobs"),
        ]
        for (fragment, param) in chatOnly { await assertRejected(fragment, param: param, chat: true) }
        await assertRejected(#""suffix": "z""#, param: "suffix", chat: false)
        await assertRejected(#""best_of": 2"#, param: "best_of", chat: false)
    }

    func testNoOpValuesOfUnsupportedFieldsAreAccepted() async {
        let both = [
            #""response_format": {"type": "text"}"#, #""n": 1"#, #""stream_options": {"include_usage": true}, "stream": true"#,
            #""use_beam_search": false"#, #""length_penalty": 1"#, #""spaces_between_special_tokens": true"#,
            #""priority": 0"#, #""bad_words": []"#, #""guided_json": null"#, #""allowed_token_ids": null"#,
            #""logit_bias": {}"#, #""prompt_logprobs": null"#,
        ]
        for chat in [false, true] {
            for fragment in both { await assertAccepted(fragment, chat: chat) }
        }
        for fragment in [#""tool_choice": "none""#, #""logprobs": false"#, #""modalities": ["text"]"#, #""echo": false"#,
                         #""parallel_tool_calls": false"#,
                         #""tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "none""#] {
            await assertAccepted(fragment, chat: true)
        }
        await assertAccepted(#""best_of": 2, "n": 2"#, chat: false)
        await assertAccepted(#""best_of": null"#, chat: false)
    }

    // MARK: - metadata and unknown fields

    func testMetadataAndUnknownFieldsAreAccepted() async {
        for chat in [false, true] {
            await assertAccepted(#""user": "u1", "metadata": {"k": "v"}, "store": false, "service_tier": "auto""#, chat: chat)
            await assertAccepted(#""no_such_field": [1, {"x": null}], "another_one": 3"#, chat: chat)
        }
        XCTAssertTrue(logs.messages.contains { $0.level == .warning && $0.text.contains("no_such_field") && $0.text.contains("another_one") },
                      "\(logs.messages)")
        XCTAssertFalse(logs.messages.contains { $0.text.contains("metadata") || $0.text.contains("service_tier") })
        XCTAssertEqual(try UndeclaredRequestFields.check(["no_such_field": .null, "metadata": .object([:]), "zz": .bool(true)]),
                       ["no_such_field", "zz"])
        for tokenizeBody in [#"{"prompt": "ab", "no_such_field": 1}"#] {
            XCTAssertNoThrow(try serving.tokenize(Data(tokenizeBody.utf8)))
        }
    }

    func testDecodingHandsBackExactlyTheUndeclaredFields() throws {
        let d = try OpenAIJSON.decodeRequestFields(CompletionRequest.self, from: Data(
            #"{"prompt": "a", "logit_bias": {"1": 2}, "guided_json": {"type": "object"}, "x": null}"#.utf8))
        XCTAssertEqual(d.body.logitBias, ["1": 2])
        XCTAssertEqual(d.undeclaredFields, ["guided_json": .object(["type": .string("object")]), "x": .null])
        XCTAssertThrowsError(try OpenAIJSON.decodeRequestFields(ChatCompletionRequest.self, from: Data("[1]".utf8))) {
            XCTAssertEqual(($0 as? OpenAIError)?.status, 400)
        }
    }

    // MARK: - implemented vLLM extras

    func testTruncatePromptTokensKeepsTheLastTokens() async throws {
        let obj = try await json(#"{"prompt": "abcdef", "max_tokens": 2, "truncate_prompt_tokens": 2}"#)
        XCTAssertEqual((obj["usage"] as! [String: Any])["prompt_tokens"] as? Int, 2)
        XCTAssertEqual(backend.addedRequests.last?.promptTokenIds, [0x65, 0x66])
        let echoed = try await json(#"{"prompt": "abcdef", "max_tokens": 1, "truncate_prompt_tokens": 3, "echo": true}"#)
        XCTAssertEqual(((echoed["choices"] as! [[String: Any]])[0]["text"] as? String), "defg")
        let chatObj = try await json(chat(#""truncate_prompt_tokens": 4"#), chat: true)
        XCTAssertEqual((chatObj["usage"] as! [String: Any])["prompt_tokens"] as? Int, 4)
        _ = try await json(completion(#""truncate_prompt_tokens": -1"#))
        await assertRejected(#""truncate_prompt_tokens": 0"#, param: "truncate_prompt_tokens", chat: false)
        await assertRejected(#""truncate_prompt_tokens": 65"#, param: "truncate_prompt_tokens", chat: true)
    }

    func testRequestIdNamesTheResponse() async throws {
        let completionId = try await json(completion(#""request_id": "abc123""#))["id"] as? String
        XCTAssertEqual(completionId, "cmpl-abc123")
        let chatId = try await json(chat(#""request_id": "xyz""#), chat: true)["id"] as? String
        XCTAssertEqual(chatId, "chatcmpl-xyz")
        XCTAssertEqual(backend.addedRequests.last?.requestId, "chatcmpl-xyz-0")
    }

    func testDocumentsReachTheTemplateContext() async throws {
        // The character tokenizer's template ignores extra context, so this only checks acceptance.
        await assertAccepted(#""documents": [{"title": "t", "text": "x"}]"#, chat: true)
    }

    // MARK: - one validator

    func testSamplingErrorsComeFromTheSharedValidatorWithTheEndpointsParameterName() async {
        await assertRejected(#""min_tokens": 3"#, param: "min_tokens", chat: false)  // max_tokens 2
        await assertRejected(#""stop_token_ids": [1114112]"#, param: "stop_token_ids", chat: true)
        await assertRejected(#""top_k": -2"#, param: "top_k", chat: false)
        await assertRejected(#""repetition_penalty": 0"#, param: "repetition_penalty", chat: true)
        await assertRejected(#""logprobs": true, "top_logprobs": 21"#, param: "top_logprobs", chat: true)
        await assertRejected(#""logprobs": 21"#, param: "logprobs", chat: false)
        // min_tokens beyond the default max_tokens (16 for completions) is caught too.
        let e = await error(#"{"prompt": "a", "min_tokens": 17}"#)
        XCTAssertEqual(e?.param, "min_tokens")
    }

    func testHugeMaxTokensIsA400NotACrash() async throws {
        let e = await error(#"{"prompt": "a", "max_tokens": 9223372036854775807}"#)
        XCTAssertEqual(e?.status, 400); XCTAssertEqual(e?.param, "max_tokens")
        let c = await error(chat(#""max_completion_tokens": 9223372036854775807"#).replacingOccurrences(of: #""max_tokens": 2, "#, with: ""), chat: true)
        XCTAssertEqual(c?.param, "max_tokens")
        _ = try await json(completion(""))  // still serving
    }
}

/// Log lines kept for assertions (the unknown-field warning).
final class CapturedLogs: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [(level: Logger.Level, text: String)] = []
    var messages: [(level: Logger.Level, text: String)] { lock.lock(); defer { lock.unlock() }; return lines }
    func append(_ level: Logger.Level, _ text: String) { lock.lock(); lines.append((level, text)); lock.unlock() }
}

/// A `LogHandler` that appends every line to a `CapturedLogs`.
struct CapturingLogHandler: LogHandler {
    let logs: CapturedLogs
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String,
             file: String, function: String, line: UInt) {
        logs.append(level, message.description)
    }
}
