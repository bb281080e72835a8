import Foundation
import XCTest

@testable import PagodaTokenizer

/// Every case of shared/conformance/tokenizers/*/cases.jsonl and llama.cpp's vectors: ids, decode and
/// decode with skip_special_tokens exactly as Hugging Face `tokenizers`, and streaming decode.
final class TokenizerConformanceTests: XCTestCase {
    func checkCases(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let tok = try Conformance.tokenizer(name)
        let cases = try Conformance.cases(name)
        XCTAssertEqual(cases.count, 204, file: file, line: line)
        var failures = 0
        for c in cases {
            let ids = tok.encode(c.text, addSpecialTokens: c.addSpecialTokens)
            if ids != c.ids {
                failures += 1
                XCTFail("\(name) encode(\(c.text.debugDescription), add_special=\(c.addSpecialTokens)) = \(ids), want \(c.ids)", file: file, line: line)
            }
            let d = tok.decode(c.ids)
            if d != c.decoded {
                failures += 1
                XCTFail("\(name) decode(\(c.ids)) = \(d.debugDescription), want \(c.decoded.debugDescription)", file: file, line: line)
            }
            let ds = tok.decode(c.ids, skipSpecialTokens: true)
            if ds != c.decodedSkipSpecial {
                failures += 1
                XCTFail("\(name) decode(\(c.ids), skip) = \(ds.debugDescription), want \(c.decodedSkipSpecial.debugDescription)", file: file, line: line)
            }
            if failures > 20 { return }
        }
    }

    func checkLlamaCpp(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let tok = try Conformance.tokenizer(name)
        let vectors = try Conformance.llamaCppVectors(name)
        XCTAssertEqual(vectors.count, 46, file: file, line: line)
        for (text, want) in vectors {
            XCTAssertEqual(tok.encode(text, addSpecialTokens: false), want, "\(name) \(text.debugDescription)", file: file, line: line)
        }
    }

    /// Feeding ids one at a time yields exactly `decoded`; no piece holds a replacement character that the
    /// full text does not have at that place (i.e. no broken UTF-8 sequence is ever emitted).
    func checkStreaming(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let tok = try Conformance.tokenizer(name)
        for c in try Conformance.cases(name) {
            for skip in [false, true] {
                let want = skip ? c.decodedSkipSpecial : c.decoded
                var detok = IncrementalDetokenizer(tokenizer: tok, skipSpecialTokens: skip)
                var got = ""
                for id in c.ids {
                    let piece = detok.add(id)
                    if piece.contains("\u{FFFD}") {
                        let start = got.utf8.count
                        let expected = Array(want.utf8.dropFirst(start).prefix(piece.utf8.count))
                        XCTAssertEqual(Array(piece.utf8), expected, "\(name): premature U+FFFD in \(c.text.debugDescription)", file: file, line: line)
                    }
                    got += piece
                }
                got += detok.finish()
                XCTAssertEqual(got, want, "\(name) streaming \(c.ids) skip=\(skip)", file: file, line: line)
            }
        }
    }

    func testLlama3Cases() throws { try checkCases("llama3") }
    func testQwen2Cases() throws { try checkCases("qwen2") }
    func testLlama2Cases() throws { try checkCases("llama2") }
    func testGPT2Cases() throws { try checkCases("gpt2") }
    func testPhi3Cases() throws { try checkCases("phi3") }

    func testLlama3LlamaCppVectors() throws { try checkLlamaCpp("llama3") }
    func testQwen2LlamaCppVectors() throws { try checkLlamaCpp("qwen2") }
    func testLlama2LlamaCppVectors() throws { try checkLlamaCpp("llama2") }
    func testGPT2LlamaCppVectors() throws { try checkLlamaCpp("gpt2") }
    func testPhi3LlamaCppVectors() throws { try checkLlamaCpp("phi3") }

    func testLlama3Streaming() throws { try checkStreaming("llama3") }
    func testQwen2Streaming() throws { try checkStreaming("qwen2") }
    func testLlama2Streaming() throws { try checkStreaming("llama2") }
    func testGPT2Streaming() throws { try checkStreaming("gpt2") }
    func testPhi3Streaming() throws { try checkStreaming("phi3") }
}
