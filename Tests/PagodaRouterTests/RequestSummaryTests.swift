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

    /// The fast scanner takes the usual bodies, and whatever it takes it reads exactly as `JSONDecoder` does.
    func testScannerAgreesWithTheDecoder() throws {
        let taken: [(String, Bool)] = [
            (#"{"model":"stub","prompt":"The quick brown fox jumps over the lazy dog","max_tokens":16}"#, false),
            (#" {"prompt" : "a\"b\\c\/d\n\t\u00e9\ud83d\ude00 é" , "stream":true,"ignore_eos":false,"max_tokens":null} "#, false),
            (#"{"prompt":["x","yz"],"max_completion_tokens":7,"logit_bias":{"1":-1.5e3,"2":0},"stop":["\n",null,true]}"#, false),
            (#"{"prompt":[1,-2,30],"n":1}"#, false),
            (#"{"prompt":[[1,2],[],[3]]}"#, false),
            (#"{"prompt":[]}"#, false),
            (#"{"prompt":[[]]}"#, false),
            (#"{"model":null,"prompt":"","max_tokens":0,"max_completion_tokens":9}"#, false),
            (#"{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":null}]},{"role":null,"content":null,"name":"n"}],"stream":true}"#, true),
            (#"{"messages":[],"prompt":[1]}"#, true),
        ]
        for (body, chat) in taken {
            let bytes = Array(body.utf8)
            let fast = try XCTUnwrap(RoutingFieldScanner.summary(bytes, isChat: chat), body)
            XCTAssertEqual(fast, try RequestSummary(decoding: bytes, isChat: chat), body)
        }
        // Bodies it leaves to the decoder: errors, unusual shapes, repeated or escaped keys.
        let left: [(String, Bool)] = [
            ("not json", false), ("", false), (#"{"prompt":"x"} x"#, false), (#"{"prompt":"x",}"#, false),
            (#"{"prompt":"x","max_tokens":"ten"}"#, false), (#"{"prompt":"x","max_tokens":1.5}"#, false),
            (#"{"prompt":"x","max_tokens":01}"#, false), (#"{"prompt":"x","stream":"yes"}"#, false),
            (#"{"max_tokens":3}"#, false), (#"{"prompt":{"a":1}}"#, false), (#"{"prompt":[1,"a"]}"#, false),
            (#"{"prompt":"x","prompt":"y"}"#, false), (#"{"pro\u006dpt":"x"}"#, false), (#"{"prompt":"\ud83d"}"#, false),
            (#"{"prompt":"x","user":"é"}"#, false), (#"{"prompt":"x","t":[1,}"#, false), (#"{"prompt":"x"}"#, true),
            (#"{"messages":[{"role":"user","content":5}]}"#, true), (#"{"messages":"hi"}"#, true),
            ("{\"prompt\":\"a\u{01}\"}", false), (#"{"prompt":"x","max_tokens":99999999999999999999}"#, false),
        ]
        for (body, chat) in left {
            XCTAssertNil(RoutingFieldScanner.summary(Array(body.utf8), isChat: chat), body)
        }
        XCTAssertNil(RoutingFieldScanner.summary(Array(#"{"prompt":"x","a":""#.utf8) + [0xFF, 0x22, 0x7D], isChat: false))
        XCTAssertNil(RoutingFieldScanner.summary(Array(#"{"prompt":""#.utf8) + [0xC3, 0x22, 0x7D], isChat: false))
    }
}
