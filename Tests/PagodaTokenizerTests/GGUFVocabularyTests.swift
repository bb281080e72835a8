import Foundation
import XCTest

@testable import PagodaTokenizer

/// `Tokenizer(gguf:)` on small vocabularies written out here; real files are checked in
/// PagodaEngineTests/GGUFTokenizerTests (SmolLM2 against transformers, llama.cpp's vocabulary vectors).
final class GGUFVocabularyTests: XCTestCase {
    // MARK: SentencePiece (`llama`)

    static let spmWords = [
        "▁", "h", "e", "l", "o", "w", "r", "d", "he", "ll", "llo", "hello", "▁hello", "▁w", "or", "ld", "▁wor", "▁world", "▁he",
        "wor", "<think>",
    ]

    static func spm(addSpacePrefix: Bool? = nil, merges: [String]? = nil) -> GGUFVocabulary {
        let tokens = ["<unk>", "<s>", "</s>"] + (0..<256).map { String(format: "<0x%02X>", $0) } + spmWords
        return GGUFVocabulary(
            path: "spm.gguf", model: "llama", tokens: tokens,
            scores: [Double](repeating: 0, count: 259) + spmWords.indices.map { -Double($0) },
            tokenTypes: [2, 3, 3] + [Int](repeating: 6, count: 256) + [Int](repeating: 1, count: spmWords.count - 1) + [4],
            merges: merges, bosTokenId: 1, eosTokenId: 2, unknownTokenId: 0, addSpacePrefix: addSpacePrefix,
            chatTemplate: "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}",
            namedChatTemplates: ["tool_use": "tools"])
    }

    /// Merges from scores in transformers' `generate_merges` order (computed with transformers 5.24 for this vocabulary).
    func testMergesFromScoresFollowTransformers() {
        let v = Self.spm()
        let merges = Tokenizer.mergesFromScores(tokens: v.tokens, scores: v.scores!, vocab: Tokenizer.vocabulary(v.tokens))
        XCTAssertEqual(
            merges.map { "\($0.0) \($0.1)" },
            ["h e", "l l", "ll o", "he llo", "▁he llo", "▁ hello", "▁ w", "o r", "l d", "▁w or", "▁ wor", "▁wor ld", "▁ he", "w or"])
    }

    /// Ids and text as the `tokenizers` library gives for the same vocabulary with the upstream Llama 2 pipeline
    /// (Prepend ▁ + Replace, byte fallback; reference computed with tokenizers 0.23.3).
    func testSentencePieceVocabulary() throws {
        let tok = try Tokenizer(gguf: Self.spm())
        XCTAssertEqual(tok.encode("hello world", addSpecialTokens: false), [271, 276])
        XCTAssertEqual(tok.encode("hello world"), [1, 271, 276], "add_bos_token defaults to true for llama vocabularies")
        XCTAssertEqual(tok.encode("hello  world é", addSpecialTokens: false), [271, 259, 276, 259, 198, 172])
        XCTAssertEqual(tok.encode("<think>hello</think>", addSpecialTokens: false), [279, 271, 63, 50, 119, 260, 108, 113, 110, 65])
        XCTAssertEqual(tok.encode(" hello", addSpecialTokens: false), [259, 271])
        XCTAssertEqual(tok.decode([271, 259, 276, 259, 198, 172]), "hello  world é")
        XCTAssertEqual(tok.decode([1, 271, 2], skipSpecialTokens: true), "hello")
        XCTAssertTrue(tok.isSpecial(1))
        XCTAssertFalse(tok.isSpecial(279), "user-defined tokens are added but not special")
        XCTAssertEqual(tok.bosTokenId, 1)
        XCTAssertEqual(tok.eosTokenId, 2)
        XCTAssertEqual(tok.config.defaultChatTemplate, "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}")
        XCTAssertEqual(tok.config.chatTemplates["tool_use"], "tools")

        // Merges given in the file win over the scores; add_space_prefix false drops the leading ▁.
        let noPrefix = try Tokenizer(gguf: Self.spm(addSpacePrefix: false, merges: ["h e", "l l", "ll o", "he llo"]))
        XCTAssertEqual(noPrefix.encode("hello", addSpecialTokens: false), [270])
        XCTAssertEqual(noPrefix.decode([270, 259, 270]), "hello hello")
    }

    // MARK: Byte-level BPE (`gpt2`)

    /// The 256 byte-level symbols, then merges building "12", "123", "ab", "Ġab", and control/user tokens.
    static func byteLevel(pre: String?, addBos: Bool? = nil) -> GGUFVocabulary {
        var tokens = ByteLevelAlphabet.byteToScalar.map { String(Character($0)) }
        let extra = ["12", "123", "ab", "Ġab", "<|end|>", "<x y>", "ĠĠ"]
        tokens += extra
        let types = [Int](repeating: 1, count: 256) + [1, 1, 1, 1, 3, 3, 1]
        return GGUFVocabulary(
            path: "bpe.gguf", model: "gpt2", preTokenizer: pre, tokens: tokens, tokenTypes: types,
            merges: ["1 2", "12 3", "a b", "Ġ ab", "Ġ Ġ"], bosTokenId: 260, eosTokenId: 260, addBosToken: addBos)
    }

    func testPreTokenizerIsChosenByName() throws {
        func ids(_ pre: String?, _ text: String) throws -> [Int] {
            try Tokenizer(gguf: Self.byteLevel(pre: pre)).encode(text, addSpecialTokens: false)
        }
        let one = 0x31, four = 0x34  // token id = byte value: "1" is 0x31
        XCTAssertEqual(try ids(nil, "1234"), [257, four], "GPT-2: the digit run is one word, merged left to right")
        XCTAssertEqual(try ids("gpt-2", "1234"), [257, four])
        XCTAssertEqual(try ids("llama-bpe", "1234"), [257, four], "Llama 3: digits in groups of three")
        XCTAssertEqual(try ids("qwen2", "1234"), [one, one + 1, one + 2, four], "Qwen2: single digits")
        XCTAssertEqual(try ids("smollm", "1234"), [one, one + 1, one + 2, four], "SmolLM: each digit alone first")
        XCTAssertEqual(try ids("llama-bpe", "12345"), [257, four, four + 1])
    }

    func testByteLevelVocabulary() throws {
        let tok = try Tokenizer(gguf: Self.byteLevel(pre: "gpt-2"))
        XCTAssertEqual(tok.encode("ab ab", addSpecialTokens: false), [258, 259])
        XCTAssertEqual(tok.encode("ab<|end|>", addSpecialTokens: false), [258, 260], "control tokens are matched whole")
        XCTAssertEqual(tok.encode("ab"), [258], "no BOS unless the file asks")
        XCTAssertEqual(try Tokenizer(gguf: Self.byteLevel(pre: "gpt-2", addBos: true)).encode("ab"), [260, 258])
        XCTAssertEqual(try Tokenizer(gguf: Self.byteLevel(pre: "llama-bpe")).encode("ab"), [260, 258], "Llama 3 adds BOS by default")
        XCTAssertTrue(tok.isSpecial(260))
        // "<x y>" is marked control but is not written in the byte-level alphabet (a raw space): a llama.cpp
        // mislabel, kept as a normal vocabulary entry under its respelled form.
        XCTAssertFalse(tok.isSpecial(261))
        XCTAssertEqual(tok.tokenToId("<xĠy>"), 261)
        XCTAssertEqual(tok.decode([258, 259, 260]), "ab ab<|end|>")
        XCTAssertEqual(tok.decode([258, 260], skipSpecialTokens: true), "ab")
        XCTAssertNil(tok.config.defaultChatTemplate)
    }

    // MARK: Errors

    private func assertError(_ v: GGUFVocabulary, _ fragment: String, line: UInt = #line) {
        XCTAssertThrowsError(try Tokenizer(gguf: v), line: line) { error in
            XCTAssertTrue("\(error)".hasPrefix(v.path), "\(error)", line: line)
            XCTAssertTrue("\(error)".contains(fragment), "\(error) should contain \(fragment)", line: line)
        }
    }

    func testErrorsNameTheField() {
        assertError(Self.byteLevel(pre: "no-such-family"), "field tokenizer.ggml.pre: unsupported type \"no-such-family\"")
        var v = Self.byteLevel(pre: nil)
        v.model = "bert"
        assertError(v, "field tokenizer.ggml.model: unsupported type \"bert\"")
        v = Self.byteLevel(pre: nil)
        v.bosTokenId = 999
        assertError(v, "tokenizer.ggml.bos_token_id: id 999 is outside the 263 tokens")
        v = Self.byteLevel(pre: nil)
        v.merges = ["a zz"]
        assertError(v, "tokenizer.ggml.merges[0]: token \"zz\" is not in the vocab")
        v.merges = ["ab"]
        assertError(v, "tokenizer.ggml.merges[0]: expected \"left right\"")
        v = Self.spm()
        v.scores = [0]
        assertError(v, "tokenizer.ggml.scores: 1 scores for 280 tokens")
        v = Self.spm()
        v.tokenTypes = []
        assertError(v, "tokenizer.ggml.token_type: 0 types for 280 tokens")
        v = Self.spm()
        v.scores = nil
        assertError(v, "tokenizer.ggml.scores: missing (and no merges)")
    }

    func testMetadataDictionary() throws {
        let m: [String: Any] = [
            "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "qwen2", "tokenizer.ggml.tokens": ["a", "b", "ab"],
            "tokenizer.ggml.token_type": [1, 1, 1], "tokenizer.ggml.merges": ["a b"], "tokenizer.ggml.eos_token_id": 2,
            "tokenizer.ggml.add_bos_token": false, "tokenizer.chat_template": "t", "tokenizer.chat_template.rag": "r",
            "tokenizer.ggml.scores": [0, 1, 2], "general.name": 5,
        ]
        let v = try GGUFVocabulary(metadata: m, path: "m.gguf")
        XCTAssertEqual(v.model, "gpt2")
        XCTAssertEqual(v.preTokenizer, "qwen2")
        XCTAssertEqual(v.tokens, ["a", "b", "ab"])
        XCTAssertEqual(v.scores, [0, 1, 2], "integer scores are accepted")
        XCTAssertEqual(v.eosTokenId, 2)
        XCTAssertEqual(v.addBosToken, false)
        XCTAssertEqual(v.chatTemplate, "t")
        XCTAssertEqual(v.namedChatTemplates, ["rag": "r"])
        for (key, value, expected) in [
            ("tokenizer.ggml.tokens", [1, 2] as Any, "expected an array of strings"),
            ("tokenizer.ggml.eos_token_id", "2" as Any, "expected an integer"), ("tokenizer.ggml.add_bos_token", 1 as Any, "expected a bool"),
        ] {
            var bad = m
            bad[key] = value
            XCTAssertThrowsError(try GGUFVocabulary(metadata: bad, path: "m.gguf")) {
                XCTAssertEqual("\($0)", "m.gguf: field \(key): \(expected)")
            }
        }
        var missing = m
        missing["tokenizer.ggml.model"] = nil
        XCTAssertThrowsError(try GGUFVocabulary(metadata: missing, path: "m.gguf")) {
            XCTAssertEqual("\($0)", "m.gguf: field tokenizer.ggml.model: missing")
        }
    }
}
