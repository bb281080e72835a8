import XCTest

@testable import PagodaServer

/// `--reasoning-parser`: the whole-output split (vLLM's `extract_reasoning`) and the streaming
/// parser, which must give the same split whatever the deltas' boundaries are.
final class ReasoningParserTests: XCTestCase {
    func testDeepSeekR1TreatsEverythingBeforeTheEndTagAsReasoning() {
        let p = ReasoningParserKind.deepseekR1
        XCTAssertEqual(p.split("plan</think>answer").reasoning, "plan")
        XCTAssertEqual(p.split("plan</think>answer").content, "answer")
        XCTAssertEqual(p.split("<think>plan</think>answer").reasoning, "plan")
        XCTAssertEqual(p.split("still thinking").reasoning, "still thinking")
        XCTAssertNil(p.split("still thinking").content)
        XCTAssertNil(p.split("plan</think>").content, "an empty answer is null")
    }

    func testQwen3NeedsAnExplicitThinkBlock() {
        let p = ReasoningParserKind.qwen3
        XCTAssertNil(p.split("just an answer").reasoning)
        XCTAssertEqual(p.split("just an answer").content, "just an answer")
        XCTAssertNil(p.split("plan</think>answer").reasoning, "no <think>: all content")
        XCTAssertEqual(p.split("<think>\nplan\n</think>\n\nanswer").reasoning, "\nplan\n")
        XCTAssertEqual(p.split("<think>\nplan\n</think>\n\nanswer").content, "\n\nanswer")
    }

    /// Feeds `text` in pieces of `size` characters; returns the joined reasoning and content.
    func stream(_ kind: ReasoningParserKind, _ text: String, size: Int) -> (String, String) {
        let parser = ReasoningStreamParser(kind: kind)
        let chars = Array(text)
        var reasoning = "", content = ""
        var i = 0
        repeat {
            let piece = String(chars[i..<min(i + size, chars.count)])
            i += size
            let (r, c) = parser.feed(piece, final: i >= chars.count)
            reasoning += r
            content += c
        } while i < chars.count
        return (reasoning, content)
    }

    func testStreamingSplitsTheSameWhereverTheDeltasBreak() {
        let cases: [(ReasoningParserKind, String)] = [
            (.deepseekR1, "step one, step two</think>The answer is 4."),
            (.deepseekR1, "<think>a < b and c </thin k></think>yes"),
            (.deepseekR1, "no end tag at all <"),
            (.qwen3, "<think>\nI think</think>\n\nFour."),
            (.qwen3, "pre <think>x</think>y"),
        ]
        for (kind, text) in cases {
            let whole = kind.split(text)
            for size in 1...text.count {
                let (r, c) = stream(kind, text, size: size)
                if kind == .qwen3 && text.hasPrefix("pre") {
                    // vLLM streams text before <think> as content; the whole split drops it.
                    XCTAssertEqual(r, whole.reasoning ?? "", "\(kind) \(text) by \(size)")
                    XCTAssertEqual(c, "pre " + (whole.content ?? ""), "\(kind) \(text) by \(size)")
                    continue
                }
                XCTAssertEqual(r, whole.reasoning ?? "", "\(kind) \(text) by \(size)")
                XCTAssertEqual(c, whole.content ?? "", "\(kind) \(text) by \(size)")
            }
        }
    }

    func testStreamingHoldsBackOnlyAPossibleTag() {
        let parser = ReasoningStreamParser(kind: .deepseekR1)
        XCTAssertEqual(parser.feed("abc</th").reasoning, "abc")
        XCTAssertEqual(parser.feed("ink>x").content, "x")
        XCTAssertEqual(parser.feed("</think> more").content, "</think> more", "after the block everything is content")
    }
}
