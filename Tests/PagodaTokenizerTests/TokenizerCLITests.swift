import Foundation
import XCTest

@testable import PagodaTokenizer

/// `pagoda tokenize` / `pagoda detokenize`, run as the built binary (next to the test bundle).
final class TokenizerCLITests: XCTestCase {
    static let binary: URL = {
        var dir = Bundle(for: TokenizerCLITests.self).bundleURL
        while dir.pathExtension == "xctest" || dir.lastPathComponent == "Contents" || dir.lastPathComponent == "MacOS" {
            dir.deleteLastPathComponent()
        }
        return dir.appendingPathComponent("pagoda")
    }()

    /// Runs pagoda with `args`; returns (exit status, stdout, stderr).
    func pagoda(_ args: [String]) throws -> (Int32, String, String) {
        guard FileManager.default.isExecutableFile(atPath: Self.binary.path) else {
            XCTFail("pagoda binary not built at \(Self.binary.path) (run swift build --build-tests)")
            return (-1, "", "")
        }
        let p = Process()
        p.executableURL = Self.binary
        p.arguments = args
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    func testTokenizeTextAndDetokenize() throws {
        // phi3: small (fast to load), adds BOS, has special tokens to skip.
        let dir = Conformance.tokenizerDir("phi3")
        let c = try Conformance.cases("phi3").first { $0.addSpecialTokens && $0.text.count > 5 }!
        let (rc, out, _) = try pagoda(["tokenize", dir, "--text", c.text, "--add-special-tokens"])
        XCTAssertEqual(rc, 0)
        XCTAssertEqual(out, c.ids.map(String.init).joined(separator: " ") + "\n")

        let ids = c.ids.map(String.init).joined(separator: ",")
        let (rc2, text, _) = try pagoda(["detokenize", dir, "--ids", ids])
        XCTAssertEqual(rc2, 0)
        XCTAssertEqual(text, c.decoded + "\n")
        let (_, skipped, _) = try pagoda(["detokenize", dir, "--ids", ids, "--skip-special-tokens"])
        XCTAssertEqual(skipped, c.decodedSkipSpecial + "\n")
    }

    func testTokenizeMessagesJSON() throws {
        let tok = try Conformance.tokenizer("phi3")
        let file = NSTemporaryDirectory() + "pagoda-msgs-\(UUID().uuidString).json"
        defer { try? FileManager.default.removeItem(atPath: file) }
        let messages = #"[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi <|end|> ü"}]"#
        try messages.write(toFile: file, atomically: true, encoding: .utf8)
        let (rc, out, err) = try pagoda(["tokenize", Conformance.tokenizerDir("phi3"), "--messages-file", file, "--add-generation-prompt", "--json"])
        XCTAssertEqual(rc, 0, err)
        let obj = try JSONReader.parse(Data(out.utf8)) as! [String: Any]
        let prompt = obj["prompt"] as! String
        guard case .list(let list) = try JinjaValue(jsonString: messages) else { return XCTFail("messages") }
        XCTAssertEqual(prompt, try tok.applyChatTemplate(messages: list, addGenerationPrompt: true))
        XCTAssertTrue(prompt.hasSuffix("<|assistant|>\n"), prompt)
        let ids = (obj["ids"] as! [NSNumber]).map { $0.intValue }
        XCTAssertEqual(ids, tok.encode(prompt, addSpecialTokens: false))
        XCTAssertTrue(ids.contains(32007))  // <|end|> split out as one token
        XCTAssertEqual(obj["text"] as? String, tok.decode(ids))
    }

    func testBadInputsGiveOneLineErrors() throws {
        let dir = Conformance.tokenizerDir("gpt2")
        for args in [
            ["tokenize", "/nonexistent-model-dir", "--text", "hi"],
            ["detokenize", dir, "--ids", "1,x"],
            ["detokenize", dir, "--ids", "99999999"],
            ["tokenize", Conformance.tokenizerDir("llama2"), "--messages-file", "/nonexistent.json"],
        ] {
            let (rc, out, err) = try pagoda(args)
            XCTAssertNotEqual(rc, 0, "\(args)")
            XCTAssertEqual(out, "", "\(args)")
            XCTAssertTrue(err.hasPrefix("Error: "), "\(args): \(err)")
        }
        let (rc, _, err) = try pagoda(["tokenize", Conformance.tokenizerDir("llama2"), "--text", "x", "--add-generation-prompt"])
        XCTAssertNotEqual(rc, 0)
        XCTAssertTrue(err.contains("--messages-file"), err)
    }
}
