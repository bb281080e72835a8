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

    /// Random walks through a nested schema and through free JSON (`json_object`, deep stacks, cut
    /// contexts): at every step the mask built from the per-context masks and the dependent checks
    /// equals a brute-force check of the tokens (every 61st id, plus every dependent token of the
    /// state's contexts), also with a state cache so small that it evicts on every step.
    func testContextMasksMatchBruteForceOnRandomWalks() throws {
        let (_, vocab) = try vocabulary()
        let schema = #"""
            {"type": "object", "properties": {"name": {"type": "string", "maxLength": 6},
             "tags": {"type": "array", "items": {"type": "string"}},
             "inner": {"type": "object", "properties": {"x": {"type": ["integer", "null"]}, "ys": {"type": "array", "items": {"enum": ["a", "bc"]}}},
                       "required": ["x", "ys"]}},
             "required": ["name", "tags", "inner"]}
            """#
        let specs: [StructuredOutputSpec] = [.jsonSchema(schema), .jsonObject, .regex("(ab|a\\d)+c[^x]{2,5}")]
        var seed: UInt64 = 0x1234_5678_9ABC_DEF1
        func random(_ n: Int) -> Int {
            seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17
            return Int(seed % UInt64(n))
        }
        for (k, spec) in specs.enumerated() {
            for maxMasks in [2048, 1] {
                let s = StructuredGrammar(grammar: try spec.compileGrammar(), vocabulary: vocab, maxMasks: maxMasks)
                let m = s.makeMatcher()
                var prefix: [UInt8] = []
                for step in 0..<16 {
                    var allowed: [Int] = []
                    var checked = Set<Int>(stride(from: step % 61, to: vocab.count, by: 61))
                    for leaf in m.state where leaf >= 0 {
                        let c = s.contexts.slot(for: leaf)
                        for t in s.contexts.dependent[c] { checked.insert(Int(t)) }
                    }
                    for id in checked {
                        let fresh = s.makeMatcher()
                        XCTAssertTrue(fresh.advance(bytes: prefix))
                        let expect = vocab.tokenBytes[id].map { !$0.isEmpty && fresh.advance(bytes: $0) } ?? false
                        XCTAssertEqual(
                            m.allows(token: id), expect, "spec \(k) prefix \(String(decoding: prefix, as: UTF8.self)) token \(id)")
                        if expect { allowed.append(id) }
                    }
                    if allowed.isEmpty { break }
                    allowed.sort()
                    let t = allowed[random(allowed.count)]
                    XCTAssertTrue(m.advance(token: t))
                    prefix += vocab.tokenBytes[t]!
                }
                XCTAssertGreaterThan(s.contextsComputed, 0)
            }
        }
    }

    /// The per-context split keeps the work of a state miss small: inside a JSON string, the
    /// dependent tokens are a small part of the vocabulary.
    func testFewDependentTokensInsideAString() throws {
        let (_, vocab) = try vocabulary()
        let schema = #"{"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}, "required": ["a", "b"]}"#
        let s = StructuredGrammar(grammar: try StructuredOutputSpec.jsonSchema(schema).compileGrammar(), vocabulary: vocab)
        let m = s.makeMatcher()
        XCTAssertTrue(m.advance(bytes: Array(#"{"a": "hello"#.utf8)))
        var dependent = 0
        for leaf in m.state where leaf >= 0 {
            let c = s.contexts.slot(for: leaf)
            dependent += s.contexts.dependent[c].count
        }
        XCTAssertLessThan(dependent, vocab.count / 50, "dependent tokens inside a string")
    }

    /// A full state cache drops its least recently used mask, not all of them.
    func testStateCacheEvictsLeastRecentlyUsed() {
        var lru = LRUSlots<Int>(capacity: 2)
        XCTAssertEqual(lru.insert(1).slot, 0)
        XCTAssertEqual(lru.insert(2).slot, 1)
        XCTAssertEqual(lru.lookup(1), 0)
        let (slot, isNew) = lru.insert(3)  // 2 is the least recently used
        XCTAssertEqual(slot, 1)
        XCTAssertFalse(isNew)
        XCTAssertNil(lru.lookup(2))
        XCTAssertEqual(lru.lookup(1), 0)
        XCTAssertEqual(lru.lookup(3), 1)
        XCTAssertEqual(lru.count, 2)
    }
}
