import Foundation
import XCTest

@testable import PagodaTokenizer

/// tokenizer_config.json / special_tokens_map.json parsing and the ids they resolve to.
final class TokenizerConfigTests: XCTestCase {
    func testConformanceConfigs() throws {
        let llama3 = try Conformance.tokenizer("llama3")
        XCTAssertEqual(llama3.config.bosToken, "<|begin_of_text|>")
        XCTAssertEqual(llama3.bosTokenId, 128000)
        XCTAssertEqual(llama3.eosTokenId, 128009)
        XCTAssertEqual(llama3.config.addBosToken, true)
        XCTAssertNotNil(llama3.config.chatTemplates["default"])
        XCTAssertEqual(llama3.vocabSize, 128256)
        XCTAssertTrue(llama3.isSpecial(128009))
        XCTAssertFalse(llama3.isSpecial(100))

        let qwen = try Conformance.tokenizer("qwen2")
        XCTAssertNil(qwen.config.bosToken)
        XCTAssertNil(qwen.bosTokenId)
        XCTAssertEqual(qwen.eosTokenId, 151645)
        XCTAssertEqual(qwen.padTokenId, 151643)
        XCTAssertEqual(qwen.vocabSize, 151665)
        XCTAssertEqual(qwen.tokenToId("<tool_call>"), 151657)
        XCTAssertFalse(qwen.isSpecial(151657))
        XCTAssertEqual(qwen.idToToken(151644), "<|im_start|>")
        XCTAssertEqual(qwen.idToToken(9707), "Hello")
        XCTAssertNil(qwen.idToToken(10_000_000))

        let llama2 = try Conformance.tokenizer("llama2")
        XCTAssertEqual(llama2.config.unkToken, "<unk>")
        XCTAssertTrue(llama2.config.chatTemplates.isEmpty)
        XCTAssertEqual(llama2.vocabSize, 32000)

        let phi3 = try Conformance.tokenizer("phi3")
        XCTAssertEqual(phi3.eosTokenId, 32000)
        XCTAssertEqual(phi3.vocabSize, 32011)
    }

    func testObjectTokensListTemplatesAndMapFallback() throws {
        let dir = NSTemporaryDirectory() + "pagoda-tokcfg-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = #"""
            {"bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false}, "add_bos_token": true, "add_eos_token": false,
             "chat_template": [{"name": "default", "template": "{{ messages }}"}, {"name": "tool_use", "template": "T"}],
             "model_max_length": 4096}
            """#
        try config.write(toFile: dir + "/tokenizer_config.json", atomically: true, encoding: .utf8)
        try #"{"eos_token": {"content": "</s>"}, "unk_token": "<unk>", "bos_token": "IGNORED"}"#
            .write(toFile: dir + "/special_tokens_map.json", atomically: true, encoding: .utf8)
        let c = try TokenizerConfig(directory: dir)
        XCTAssertEqual(c.bosToken, "<s>")
        XCTAssertEqual(c.eosToken, "</s>")
        XCTAssertEqual(c.unkToken, "<unk>")
        XCTAssertNil(c.padToken)
        XCTAssertEqual(c.addBosToken, true)
        XCTAssertEqual(c.addEosToken, false)
        XCTAssertEqual(c.chatTemplates, ["default": "{{ messages }}", "tool_use": "T"])
        XCTAssertEqual(c.defaultChatTemplate, "{{ messages }}")
        XCTAssertEqual(c.raw["model_max_length"] as? Int, 4096)
    }

    func testStringTemplateIsDefault() throws {
        let dir = NSTemporaryDirectory() + "pagoda-tokcfg-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try #"{"chat_template": "X{{ bos_token }}"}"#.write(toFile: dir + "/tokenizer_config.json", atomically: true, encoding: .utf8)
        XCTAssertEqual(try TokenizerConfig(directory: dir).chatTemplates, ["default": "X{{ bos_token }}"])
    }
}
