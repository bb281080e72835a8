import Foundation
import XCTest

@testable import PagodaTokenizer

/// 300 random tricky strings per tokenizer (scripts/tokenizer-fuzz, made with Hugging Face `tokenizers`
/// 0.23.3): ids, decode, decode skipping special tokens, and streaming decode all match the reference.
/// This corpus found the canonical-equivalence vocab collision, the Hangul LV+T NFC gap and U+FEFF loss.
final class TokenizerDifferentialTests: XCTestCase {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts/tokenizer-fuzz")

    func check(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let tok = try Conformance.tokenizer(name)
        let data = try Data(contentsOf: Self.corpus.appendingPathComponent("\(name).jsonl"))
        var count = 0
        for row in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let d = try JSONReader.parse(Data(row.utf8)) as! [String: Any]
            let text = d["text"] as! String
            let ids = (d["ids"] as! [NSNumber]).map { $0.intValue }
            let decoded = d["decoded"] as! String
            XCTAssertEqual(tok.encode(text, addSpecialTokens: d["add"] as! Bool), ids, "\(name) \(text.debugDescription)", file: file, line: line)
            XCTAssertEqual(Array(tok.decode(ids).utf8), Array(decoded.utf8), "\(name) decode \(ids)", file: file, line: line)
            XCTAssertEqual(
                Array(tok.decode(ids, skipSpecialTokens: true).utf8), Array((d["skip"] as! String).utf8), "\(name) skip \(ids)",
                file: file, line: line)
            var detok = IncrementalDetokenizer(tokenizer: tok, skipSpecialTokens: false)
            var streamed = ""
            for id in ids { streamed += detok.add(id) }
            streamed += detok.finish()
            XCTAssertEqual(Array(streamed.utf8), Array(decoded.utf8), "\(name) streaming \(ids)", file: file, line: line)
            count += 1
        }
        XCTAssertEqual(count, 300, file: file, line: line)
    }

    func testLlama3() throws { try check("llama3") }
    func testQwen2() throws { try check("qwen2") }
    func testLlama2() throws { try check("llama2") }
    func testGPT2() throws { try check("gpt2") }
    func testPhi3() throws { try check("phi3") }
}
