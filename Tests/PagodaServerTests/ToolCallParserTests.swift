import XCTest

@testable import PagodaServer

/// The `--tool-call-parser` formats and the streamed tool-call deltas, on fixed texts.
final class ToolCallParserTests: XCTestCase {
    func testHermes() {
        let text =
            "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>\n"
            + "<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>"
        let r = ToolCallParserKind.hermes.parse(text)
        XCTAssertEqual(r.content, "Let me check.\n")
        XCTAssertEqual(
            r.calls,
            [ParsedToolCall(name: "get_weather", arguments: #"{"city":"Oslo"}"#), ParsedToolCall(name: "get_time", arguments: "{}")])
        // Invalid JSON inside the block: everything stays content.
        XCTAssertEqual(ToolCallParserKind.hermes.parse("<tool_call>{oops</tool_call>").calls, [])
        XCTAssertEqual(ToolCallParserKind.hermes.parse("plain").content, "plain")
    }

    func testLlama3JSON() {
        let r = ToolCallParserKind.llama3Json.parse(
            #"<|python_tag|>{"name": "a", "parameters": {"x": 1}}; {"name": "b", "parameters": {"s": "p;q"}}"#)
        XCTAssertNil(r.content)
        XCTAssertEqual(r.calls, [ParsedToolCall(name: "a", arguments: #"{"x":1}"#), ParsedToolCall(name: "b", arguments: #"{"s":"p;q"}"#)])
        XCTAssertEqual(ToolCallParserKind.llama3Json.parse("The answer is {x}").calls, [])
    }

    func testMistral() {
        let r = ToolCallParserKind.mistral.parse(#"[TOOL_CALLS][{"name": "f", "arguments": {"k": [1, 2]}}]"#)
        XCTAssertNil(r.content)
        XCTAssertEqual(r.calls, [ParsedToolCall(name: "f", arguments: #"{"k":[1,2]}"#)])
    }

    /// Feeds `pieces` through a stream; returns content, calls (name, arguments) merged by index, finish reason.
    func run(_ plan: ChatToolPlan, _ pieces: [String], finish: String = "stop") -> (String, [(String, String)], String?) {
        let s = ToolCallStream(plan: plan)
        var content = "", calls: [Int: (String, String)] = [:], reason: String? = nil
        for (k, p) in pieces.enumerated() {
            for (m, f) in s.step(p, finishReason: k == pieces.count - 1 ? finish : nil) {
                content += m.content ?? ""
                for c in m.toolCalls ?? [] {
                    var cur = calls[c.index ?? 0] ?? ("", "")
                    cur.0 += c.function.name ?? ""
                    cur.1 += c.function.arguments ?? ""
                    calls[c.index ?? 0] = cur
                }
                reason = f ?? reason
            }
        }
        return (content, calls.keys.sorted().map { calls[$0]! }, reason)
    }

    func testStreamedAutoHoldsTheMarker() {
        let plan = ChatToolPlan(mode: .auto(.hermes), structuredOutputs: nil)
        let (content, calls, reason) = run(
            plan, ["Hi ", "there <tool", "_call>{\"name\": \"f\", ", "\"arguments\": {\"a\": 1}}</tool_call>"])
        XCTAssertEqual(content, "Hi there ")
        XCTAssertEqual(calls.map(\.0), ["f"])
        XCTAssertEqual(calls.first?.1, #"{"a":1}"#)
        XCTAssertEqual(reason, "tool_calls")
        // A '<' that is not a marker is sent once it cannot be one.
        let plain = run(plan, ["a <b", "> c"])
        XCTAssertEqual(plain.0, "a <b> c")
        XCTAssertTrue(plain.1.isEmpty)
        XCTAssertEqual(plain.2, "stop")
    }

    func testStreamedNamedAndRequired() {
        let named = run(ChatToolPlan(mode: .named("f"), structuredOutputs: nil), ["{\"a\"", ": 1}"])
        XCTAssertEqual(named.1.map(\.0), ["f"])
        XCTAssertEqual(named.1.first?.1, "{\"a\": 1}")
        XCTAssertEqual(named.2, "stop")
        let required = run(ChatToolPlan(mode: .required, structuredOutputs: nil), ["[{\"name\": \"g\", ", "\"parameters\": {}}]"])
        XCTAssertEqual(required.1.map(\.0), ["g"])
        XCTAssertEqual(required.2, "tool_calls")
        let cut = run(ChatToolPlan(mode: .required, structuredOutputs: nil), ["[{\"name\": \"g\""], finish: "length")
        XCTAssertEqual(cut.0, "[{\"name\": \"g\"")
        XCTAssertEqual(cut.2, "length")
    }

    func testLlama3StreamOnlyHoldsAtTheStart() {
        let plan = ChatToolPlan(mode: .auto(.llama3Json), structuredOutputs: nil)
        let text = run(plan, ["The ", "set {x}"])
        XCTAssertEqual(text.0, "The set {x}")
        let call = run(plan, [" {\"name\": \"f\", ", "\"parameters\": {}}"])
        XCTAssertEqual(call.0, "")
        XCTAssertEqual(call.1.map(\.0), ["f"])
    }
}
