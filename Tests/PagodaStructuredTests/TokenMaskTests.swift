import Foundation
import PagodaTokenizer
import XCTest

@testable import PagodaStructured

/// Token masks against a real vocabulary (conformance qwen2, 151k tokens): the trie walk must give
/// exactly the tokens whose bytes the grammar accepts from the current state.
final class TokenMaskTests: XCTestCase {
    static let conformance: String = {
        if let env = ProcessInfo.processInfo.environment["PAGODA_CONFORMANCE"] { return env }
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return repo.appendingPathComponent("../shared/conformance").standardizedFileURL.path
    }()

    static let qwen: (Tokenizer, TokenVocabulary)? = {
        guard let t = try? Tokenizer(directory: conformance + "/tokenizers/qwen2") else { return nil }
        return (t, TokenVocabulary(tokenBytes: t.tokenByteStrings()))
    }()

    func vocabulary() throws -> (Tokenizer, TokenVocabulary) {
        guard let q = Self.qwen else { throw XCTSkip("conformance tokenizer qwen2 not found under \(Self.conformance)") }
        return q
    }

    func testTokenBytesRoundTrip() throws {
        let (tok, vocab) = try vocabulary()
        let text = "Grüße, {\"k\": [1, 2]} 東京"
        let ids = tok.encode(text, addSpecialTokens: false)
        var bytes: [UInt8] = []
        for id in ids { bytes += vocab.tokenBytes[id]! }
        XCTAssertEqual(String(decoding: bytes, as: UTF8.self), text)
        XCTAssertNil(vocab.tokenBytes[tok.tokenToId("<|im_end|>")!], "special tokens have no bytes")
    }

    /// The mask equals a brute-force check of every token (sampled every 3rd id to bound the time).
    func testMaskMatchesBruteForce() throws {
        let (tok, vocab) = try vocabulary()
        let schema =
            #"{"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer"}, "kind": {"enum": ["a b", "cd"]}}, "required": ["name", "n", "kind"]}"#
        let s = StructuredGrammar(grammar: try StructuredOutputSpec.jsonSchema(schema).compileGrammar(), vocabulary: vocab)
        for prefix in ["", "{\"na", "{\"name\": \"x", "{\"name\": \"x\", \"n\": 1", "{\"name\": \"x\", \"n\": 1, \"kind\": \""] {
            let m = s.makeMatcher()
            XCTAssertTrue(m.advance(bytes: Array(prefix.utf8)), prefix)
            var allowed = 0
            for id in stride(from: 0, to: vocab.count, by: 3) {
                let fresh = s.makeMatcher()
                fresh.advance(bytes: Array(prefix.utf8))
                let expect = vocab.tokenBytes[id].map { !$0.isEmpty && fresh.advance(bytes: $0) } ?? false
                XCTAssertEqual(m.allows(token: id), expect, "prefix \(prefix) token \(id) \(String(describing: tok.idToToken(id)))")
                if expect { allowed += 1 }
            }
            XCTAssertGreaterThan(allowed + (0..<vocab.count).filter { m.allows(token: $0) }.count, 0, prefix)
        }
    }

    /// Masked greedy decoding over random logits always yields a document of the schema, ending with EOS.
    func testMaskedDecodingProducesValidJSON() throws {
        let (tok, vocab) = try vocabulary()
        let schema =
            #"{"type": "object", "properties": {"id": {"type": "integer"}, "tags": {"type": "array", "items": {"enum": ["x", "y"]}, "maxItems": 3}, "ok": {"type": "boolean"}}, "required": ["id", "tags", "ok"]}"#
        let s = StructuredGrammar(grammar: try StructuredOutputSpec.jsonSchema(schema).compileGrammar(), vocabulary: vocab)
        let eos = tok.tokenToId("<|endoftext|>")!
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        let row = UnsafeMutablePointer<Float>.allocate(capacity: vocab.count)
        defer { row.deallocate() }
        for _ in 0..<3 {
            let m = s.makeMatcher()
            m.terminators = [eos]
            var ids: [Int] = []
            var finished = false
            for _ in 0..<200 {
                for t in 0..<vocab.count {
                    seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17
                    row[t] = Float(seed >> 40) / Float(1 << 24) * 10 - 5
                }
                row[eos] = 10  // the model would stop at once if allowed
                m.applyMask(row, count: vocab.count)
                var best = 0
                for t in 1..<vocab.count where row[t] > row[best] { best = t }
                if best == eos { finished = true; break }
                XCTAssertTrue(m.advance(token: best))
                ids.append(best)
            }
            XCTAssertTrue(finished, "no EOS within 200 tokens: \(tok.decode(ids))")
            let text = tok.decode(ids)
            let obj = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
            XCTAssertNotNil(obj?["id"] as? Int, text)
            XCTAssertNotNil(obj?["tags"] as? [String], text)
            XCTAssertNotNil(obj?["ok"] as? Bool, text)
        }
    }
}
