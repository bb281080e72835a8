import XCTest
@testable import PagodaRouter

final class RequestSummaryTests: XCTestCase {
    private func parse(_ json: String, chat: Bool = false) throws -> RequestSummary {
        try RequestSummary(json: Array(json.utf8), isChat: chat)
    }

    func testCompletionFields() throws {
        let s = try parse(#"{"model":"m","prompt":"hello world","max_tokens":32,"ignore_eos":true,"stream":true,"temperature":0}"#)
        XCTAssertEqual(s, RequestSummary(model: "m", promptText: "hello world", maxTokens: 32, ignoreEOS: true, stream: true))
    }

    func testPromptForms() throws {
        XCTAssertEqual(try parse(#"{"prompt":["a","b"]}"#).promptText, "a\nb")
        XCTAssertEqual(try parse(#"{"prompt":[1,2,3]}"#).promptTokenIds, [1, 2, 3])
        XCTAssertEqual(try parse(#"{"prompt":[[1,2],[3]]}"#).promptTokenIds, [1, 2, 3])
    }

    func testChatMessages() throws {
        let s = try parse(
            #"{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"}]},{"role":"assistant","content":null}],"max_completion_tokens":5}"#,
            chat: true)
        XCTAssertEqual(s.promptText, "system: be brief\nuser: hi\nassistant: \n")
        XCTAssertEqual(s.maxTokens, 5)
        XCTAssertFalse(s.stream)
    }

    func testErrorsNameTheField() {
        func error(_ json: String, chat: Bool = false) -> RequestSummary.ParseError? {
            do { _ = try parse(json, chat: chat); return nil } catch { return error as? RequestSummary.ParseError }
        }
        XCTAssertEqual(error("not json")?.param, nil)
        XCTAssertEqual(error(#"{"prompt":"x","max_tokens":"ten"}"#)?.param, "max_tokens")
        XCTAssertEqual(error(#"{"prompt":"x","stream":"yes"}"#)?.param, "stream")
        XCTAssertEqual(error(#"{"max_tokens":3}"#)?.param, "prompt")
        XCTAssertEqual(error(#"{"prompt":{"a":1}}"#)?.param, "prompt")
        XCTAssertEqual(error(#"{"prompt":"x"}"#, chat: true)?.param, "messages")
        XCTAssertEqual(error(#"{"messages":[{"role":"user","content":5}]}"#, chat: true)?.param, "messages[0].content")
    }

    func testCostFollowsTheVllmAscendRule() {
        let cost = RequestCost()
        let text = String(repeating: "abcd", count: 100)  // 400 bytes -> 100 estimated tokens
        XCTAssertEqual(cost.cost(RequestSummary(promptText: text, maxTokens: 64)), 100 + 32)
        XCTAssertEqual(cost.cost(RequestSummary(promptText: text, maxTokens: 64, ignoreEOS: true)), 100 + 64)
        XCTAssertEqual(cost.cost(RequestSummary(promptText: text)), 100 + 8)  // default max_tokens 16
        XCTAssertEqual(cost.cost(RequestSummary(promptText: "", promptTokenIds: [1, 2, 3], maxTokens: 2)), 3 + 1)
        let counted = RequestCost(countTokens: { $0.split(separator: " ").count })
        XCTAssertEqual(counted.cost(RequestSummary(promptText: "one two three", maxTokens: 0)), 3)
    }
}
