import Foundation
import PagodaModel
import PagodaTestSupport
import PagodaTokenizer
import XCTest

/// The tokenizer built from a real GGUF file's metadata (`GGUFFile` → `GGUFVocabulary` → `Tokenizer(gguf:)`), against
/// transformers (SmolLM2) and llama.cpp's own test vectors. Lives here because this is the first test target that
/// sees both PagodaModel (the reader) and PagodaTokenizer.
final class GGUFTokenizerTests: XCTestCase {
    /// What the model layer will do: the file's `tokenizer.*` metadata as plain values into the tokenizer module.
    static func tokenizer(gguf path: String) throws -> Tokenizer {
        let file = try GGUFFile(path: path)
        return try Tokenizer(gguf: GGUFVocabulary(metadata: file.metadata.plainValues(prefix: "tokenizer."), path: path))
    }

    /// Tests/GGUFReference/smollm2_token_ids.json, written by make_gguf_reference.py with transformers' GGUF loader:
    /// 20 strings of its own and the 110 texts of the shared tokenizer conformance cases.
    ///
    /// Pagoda follows llama.cpp's `smollm` pre-tokenizer (every \p{N} character alone, then GPT-2's regex), which is
    /// SmolLM2's own tokenizer.json; transformers 5.24 uses GPT-2's regex alone. The two differ only on numerals that
    /// are not ASCII digits ("½", "Ⅳ", "①"): on those texts Pagoda is checked against `ids_upstream` (the reference
    /// pipeline with SmolLM2's pre-tokenizer), on every other text against transformers' ids directly.
    func testSmolLM2MatchesTransformers() throws {
        guard let path = GGUFTestFiles.smolLM2 else { throw XCTSkip(GGUFTestFiles.smolLM2SkipReason) }
        let tok = try Self.tokenizer(gguf: path)
        struct Case: Decodable { var text: String, ids: [Int], ids_with_special: [Int], ids_upstream: [Int], decoded: String }
        struct Ref: Decodable { var cases: [Case] }
        let data = try Data(contentsOf: URL(fileURLWithPath: GGUFTestFiles.referenceDirectory + "/smollm2_token_ids.json"))
        let ref = try JSONDecoder().decode(Ref.self, from: data)
        XCTAssertGreaterThanOrEqual(ref.cases.count, 130)
        var transformersDiffers: [String] = []
        for c in ref.cases {
            let ids = tok.encode(c.text, addSpecialTokens: false)
            XCTAssertEqual(ids, c.ids_upstream, c.text.debugDescription)
            if c.ids == c.ids_upstream {
                XCTAssertEqual(ids, c.ids, c.text.debugDescription)
                XCTAssertEqual(tok.encode(c.text), c.ids_with_special, c.text.debugDescription)
            } else {
                transformersDiffers.append(c.text)
            }
            XCTAssertEqual(tok.decode(c.ids), c.decoded, c.text.debugDescription)
        }
        XCTAssertLessThanOrEqual(transformersDiffers.count, 2, "\(transformersDiffers)")
        print("SmolLM2: \(ref.cases.count - transformersDiffers.count)/\(ref.cases.count) texts equal to transformers' ids; "
            + "the rest differ only in transformers' handling of non-ASCII numerals: \(transformersDiffers)")
        XCTAssertEqual(tok.vocabSize, 49152)
        XCTAssertEqual(tok.bosTokenId, 1)
        XCTAssertEqual(tok.eosTokenId, 2)
        XCTAssertEqual(tok.tokenToId("<|im_end|>"), 2)
        XCTAssertTrue(tok.isSpecial(2))
        XCTAssertEqual(tok.decode([1, 4093, 198, 6004, 2], skipSpecialTokens: true), "user\nhi")

        let prompt = try tok.applyChatTemplate(
            messages: [.dict(JinjaDict([("role", .string("user")), ("content", .string("What is the capital of Japan?"))]))],
            addGenerationPrompt: true)
        XCTAssertTrue(prompt.hasPrefix("<|im_start|>system\n"), prompt)
        XCTAssertTrue(prompt.hasSuffix("<|im_start|>user\nWhat is the capital of Japan?<|im_end|>\n<|im_start|>assistant\n"), prompt)
    }

    /// llama.cpp's `models/ggml-vocab-*.gguf` with their `.inp`/`.out` vectors (encode without special tokens), when
    /// `PAGODA_LLAMACPP_VOCAB_DIR` points at that folder (e.g. from the llama_cpp_python 0.3.36 sdist).
    func testLlamaCppVocabularies() throws {
        guard let dir = GGUFTestFiles.llamaCppVocabDirectory else {
            throw XCTSkip("set PAGODA_LLAMACPP_VOCAB_DIR to llama.cpp's models/ folder to run its vocabulary vectors")
        }
        // Vocabularies whose every vector must match; the others are reported.
        let mustMatch: Set<String> = Self.exactVocabularies
        var report: [String] = []
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".gguf.inp") }.sorted()
        for inp in files {
            let name = String(inp.dropLast(".gguf.inp".count).dropFirst("ggml-vocab-".count))
            let path = dir + "/" + inp.dropLast(4)
            let tok: Tokenizer
            do {
                tok = try Self.tokenizer(gguf: path)
            } catch {
                report.append("\(name): not built: \(error)")
                XCTAssertFalse(mustMatch.contains(name), "\(error)")
                continue
            }
            let inputs = try String(contentsOfFile: dir + "/" + inp, encoding: .utf8).components(separatedBy: "\n__ggml_vocab_test__\n")
            let outs = try String(contentsOfFile: path + ".out", encoding: .utf8).components(separatedBy: "\n")
            var passed = 0
            var firstFailure = ""
            for (i, text) in inputs.dropLast().enumerated() {
                let expected = outs[i].split(separator: " ").compactMap { Int($0) }
                let got = tok.encode(text, addSpecialTokens: false)
                if got == expected {
                    passed += 1
                } else if firstFailure.isEmpty {
                    firstFailure = " first failure: \(text.debugDescription) → \(got), expected \(expected)"
                }
            }
            let total = inputs.count - 1
            report.append("\(name): \(passed)/\(total)\(firstFailure)")
            if mustMatch.contains(name) { XCTAssertEqual(passed, total, "\(name):\(firstFailure)") }
        }
        print("llama.cpp vocabulary vectors:\n  " + report.joined(separator: "\n  "))
    }

    static let exactVocabularies: Set<String> = [
        "gpt-2", "llama-bpe", "qwen2", "llama-spm", "phi-3", "starcoder", "refact", "command-r", "deepseek-coder", "deepseek-llm", "falcon", "mpt", "qwen35",
    ]
}
