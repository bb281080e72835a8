import Foundation
import XCTest

@testable import PagodaTokenizer

/// `JinjaTemplate.contentFormat`: which templates iterate `message.content` (vLLM's detection).
final class ChatTemplateContentFormatTests: XCTestCase {
    func format(_ source: String) throws -> ChatTemplateContentFormat { try JinjaTemplate(source: source).contentFormat }

    func testTemplatesThatIterateMessageContentWantParts() throws {
        XCTAssertEqual(
            try format("{% for message in messages %}{% for part in message['content'] %}{{ part.text }}{% endfor %}{% endfor %}"), .openai)
        XCTAssertEqual(
            try format(
                "{% for m in messages %}{% for c in m.content | selectattr('type', 'equalto', 'text') %}{{ c.text }}{% endfor %}{% endfor %}"
            ), .openai)
        XCTAssertEqual(
            try format(
                "{% set loop_messages = messages[1:] %}{% for m in loop_messages %}{% if m.content is string %}{{ m.content }}{% else %}{% for p in m['content'] %}{{ p['text'] }}{% endfor %}{% endif %}{% endfor %}"
            ), .openai)
    }

    func testTemplatesThatPrintContentWantAString() throws {
        XCTAssertEqual(try format("{% for message in messages %}{{ message['content'] }}{% endfor %}"), .string)
        XCTAssertEqual(
            try format("{% for message in messages %}{% for x in message['tool_calls'] %}{{ x }}{% endfor %}{% endfor %}"), .string)
        XCTAssertEqual(try format("{% for x in other['content'] %}{{ x }}{% endfor %}"), .string, "not a message variable")
    }

    /// None of the conformance set's real templates iterates content parts (vLLM detects "string" for each).
    func testTheConformanceTemplatesWantStrings() throws {
        guard let root = ProcessInfo.processInfo.environment["PAGODA_CONFORMANCE"] ?? Self.sharedConformance else {
            throw XCTSkip("conformance data not found: skipped")
        }
        let dir = URL(fileURLWithPath: root).appendingPathComponent("chat_templates")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".jinja") }
        XCTAssertEqual(files.count, 9)
        for f in files {
            let source = try String(contentsOf: dir.appendingPathComponent(f), encoding: .utf8)
            XCTAssertEqual(try format(source), .string, f)
        }
    }

    static var sharedConformance: String? {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("../shared/conformance").standardizedFileURL.path
        return FileManager.default.fileExists(atPath: dir) ? dir : nil
    }
}
