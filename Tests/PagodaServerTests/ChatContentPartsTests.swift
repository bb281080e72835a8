import PagodaOpenAI
import XCTest

@testable import PagodaServer

/// List content of chat messages: flattened for string templates, parts for templates that
/// iterate them, media parts refused by name.
final class ChatContentPartsTests: XCTestCase {
    let parts: JSONValue = .object([
        "role": .string("user"),
        "content": .array([
            .object(["type": .string("text"), "text": .string("Hello")]),
            .object(["type": .string("text"), "text": .string("world")]),
        ]),
    ])

    func testStringTemplatesGetTheTextPartsJoinedWithNewlines() throws {
        let out = try ChatContentParts.normalize([parts, .object(["role": .string("assistant"), "content": .null])], format: .string)
        XCTAssertEqual(out[0]["content"], .string("Hello\nworld"))
        XCTAssertEqual(out[0]["role"], .string("user"))
        XCTAssertEqual(out[1]["content"], .null, "a null content stays null")
    }

    func testOpenAITemplatesGetPartsAndStringsBecomeOnePart() throws {
        let plain: JSONValue = .object(["role": .string("system"), "content": .string("Be brief.")])
        let out = try ChatContentParts.normalize([plain, parts], format: .openai)
        XCTAssertEqual(out[0]["content"], .array([.object(["type": .string("text"), "text": .string("Be brief.")])]))
        XCTAssertEqual(out[1]["content"]?.arrayValue?.count, 2)
    }

    func testMediaPartsAreA400NamingTheType() {
        for type in ["image_url", "input_audio", "video_url"] {
            let m: JSONValue = .object([
                "role": .string("user"),
                "content": .array([.object(["type": .string("text"), "text": .string("look")]), .object(["type": .string(type)])]),
            ])
            XCTAssertThrowsError(try ChatContentParts.normalize([m], format: .string)) { error in
                let e = error as? OpenAIError
                XCTAssertEqual(e?.status, 400)
                XCTAssertTrue(e?.message.contains("'\(type)'") ?? false, "\(String(describing: e))")
                XCTAssertEqual(e?.param, "messages[0].content[1]")
            }
        }
        let untyped: JSONValue = .object(["role": .string("user"), "content": .array([.object(["text": .string("x")])])])
        XCTAssertThrowsError(try ChatContentParts.normalize([untyped], format: .string))
    }
}
