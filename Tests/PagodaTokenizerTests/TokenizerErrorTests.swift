import Foundation
import XCTest

@testable import PagodaTokenizer

/// Bad tokenizer folders give typed errors that name the file and field, never a crash.
final class TokenizerErrorTests: XCTestCase {
    var dir: String = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "pagoda-tok-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func write(_ json: String, _ name: String = "tokenizer.json") throws {
        try json.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
    }

    /// A tiny valid byte-level BPE tokenizer.json with the given parts replaced.
    func tinyJSON(model: String? = nil, normalizer: String = "null", preTokenizer: String = "null", decoder: String = "null") -> String {
        let m = model ?? #"{"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}"#
        return #"{"version": "1.0", "added_tokens": [], "normalizer": \#(normalizer), "pre_tokenizer": \#(preTokenizer), "post_processor": null, "decoder": \#(decoder), "model": \#(m)}"#
    }

    func loadError() -> TokenizerError? {
        do {
            _ = try Tokenizer(directory: dir)
            return nil
        } catch let e as TokenizerError {
            return e
        } catch {
            XCTFail("untyped error \(error)")
            return nil
        }
    }

    func testTinyTokenizerWorks() throws {
        try write(tinyJSON())
        let t = try Tokenizer(directory: dir)
        XCTAssertEqual(t.encode("abba"), [2, 1, 0])
        XCTAssertEqual(t.decode([2, 1, 0]), "ab b a")
    }

    func testMissingDirectory() {
        dir += "-missing"
        guard case .fileNotFound = loadError() else { return XCTFail("want fileNotFound") }
    }

    func testMissingTokenizerJSON() {
        guard case .fileNotFound(let path) = loadError() else { return XCTFail("want fileNotFound") }
        XCTAssertTrue(path.hasSuffix("tokenizer.json"))
    }

    func testTruncatedJSON() throws {
        let real = try String(contentsOfFile: Conformance.tokenizerDir("gpt2") + "/tokenizer.json", encoding: .utf8)
        try write(String(real.prefix(5000)))
        guard case .invalidJSON(let path, _) = loadError() else { return XCTFail("want invalidJSON") }
        XCTAssertTrue(path.hasSuffix("tokenizer.json"))
    }

    func testNotAnObject() throws {
        try write("[1, 2, 3]")
        guard case .invalidJSON = loadError() else { return XCTFail("want invalidJSON") }
    }

    func testUnknownModelType() throws {
        try write(tinyJSON(model: #"{"type": "Quantum", "vocab": {}}"#))
        XCTAssertEqual(loadError(), .unknownModelType(path: dir + "/tokenizer.json", type: "Quantum"))
        XCTAssertTrue(loadError()!.description.contains("Quantum"))
    }

    func testUnsupportedNormalizer() throws {
        try write(tinyJSON(normalizer: #"{"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Precompiled", "precompiled_charsmap": ""}]}"#))
        XCTAssertEqual(
            loadError(), .unsupportedComponent(path: dir + "/tokenizer.json", field: "normalizer.normalizers[1].type", type: "Precompiled"))
    }

    func testUnsupportedPreTokenizerAndDecoder() throws {
        try write(tinyJSON(preTokenizer: #"{"type": "UnicodeScripts"}"#))
        XCTAssertEqual(loadError(), .unsupportedComponent(path: dir + "/tokenizer.json", field: "pre_tokenizer.type", type: "UnicodeScripts"))
        try write(tinyJSON(decoder: #"{"type": "CTC"}"#))
        XCTAssertEqual(loadError(), .unsupportedComponent(path: dir + "/tokenizer.json", field: "decoder.type", type: "CTC"))
    }

    func testBadRegex() throws {
        try write(tinyJSON(preTokenizer: #"{"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated", "invert": false}"#))
        guard case .invalidPattern(_, let field, let pattern, _) = loadError() else { return XCTFail("want invalidPattern") }
        XCTAssertEqual(field, "pre_tokenizer.pattern")
        XCTAssertEqual(pattern, "(unclosed")
    }

    func testMergeWithUnknownToken() throws {
        try write(tinyJSON(model: #"{"type": "BPE", "vocab": {"a": 0}, "merges": ["a zz"]}"#))
        guard case .invalidField(_, let field, _) = loadError() else { return XCTFail("want invalidField") }
        XCTAssertEqual(field, "model.merges[0]")
    }

    func testAbsurdVocabId() throws {
        try write(tinyJSON(model: #"{"type": "BPE", "vocab": {"a": 1e30}, "merges": []}"#))
        guard case .invalidField(_, let field, _) = loadError() else { return XCTFail("want invalidField") }
        XCTAssertEqual(field, "model.vocab.a")
    }

    func testMergesAsPairs() throws {
        try write(tinyJSON(model: #"{"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]}"#))
        XCTAssertEqual(try Tokenizer(directory: dir).encode("ab"), [2])
    }

    func testBadConfigField() throws {
        try write(tinyJSON())
        try write(#"{"bos_token": 12}"#, "tokenizer_config.json")
        XCTAssertEqual(loadError(), .invalidField(path: dir + "/tokenizer_config.json", field: "bos_token", reason: "expected a string or {\"content\": ...}"))
    }
}
