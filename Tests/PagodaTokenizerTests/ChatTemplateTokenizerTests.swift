// Tokenizer.applyChatTemplate: the template and special tokens come from the model folder's tokenizer_config.json.

import Foundation
import XCTest

@testable import PagodaTokenizer

final class ChatTemplateTokenizerTests: XCTestCase {
    private let root = conformanceDirectory()

    private func cases(template: String) throws -> [ChatTemplateCase] {
        let text = try String(contentsOf: root.appendingPathComponent("chat_templates/cases.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map { try ChatTemplateCase(JinjaValue(jsonString: String($0))) }.filter {
            $0.template == template
        }
    }

    /// The conformance tokenizers that carry a chat template render every case of that template byte for
    /// byte through `applyChatTemplate` (template, bos/eos/pad/unk all read from tokenizer_config.json).
    func testApplyChatTemplateWithTokenizerConfigsMatchesReference() throws {
        let pairs = [
            ("qwen2", "Qwen-Qwen2.5-7B-Instruct.jinja"),
            ("phi3", "microsoft-Phi-3.5-mini-instruct.jinja"),
        ]  // llama3's template is covered by ChatTemplateConformanceTests; its 6 MB vocabulary is slow to load in debug
        for (tokenizerName, templateFile) in pairs {
            let tokenizer = try Tokenizer(directory: root.appendingPathComponent("tokenizers/\(tokenizerName)").path)
            let fileSource = try String(contentsOf: root.appendingPathComponent("chat_templates/\(templateFile)"), encoding: .utf8)
            XCTAssertEqual(tokenizer.config.chatTemplates["default"], fileSource, tokenizerName)
            let all = try cases(template: templateFile)
            XCTAssertGreaterThanOrEqual(all.count, 9, templateFile)
            for c in all {
                let out = try tokenizer.applyChatTemplate(
                    messages: c.messages, tools: c.tools, addGenerationPrompt: c.addGenerationPrompt, extraContext: c.extraContext)
                XCTAssertEqual(out, c.rendered, "\(tokenizerName) \(c.name) gen=\(c.addGenerationPrompt)")
            }
        }
    }

    /// A two-token BPE tokenizer.json, so selection tests do not pay for loading a real vocabulary.
    private static let tinyTokenizerJSON: String = {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pagoda-chat-template-tiny-\(getpid()).json").path
        let json = #"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []}}"#
        _ = FileManager.default.createFile(atPath: path, contents: Data(json.utf8))
        return path
    }()

    /// A tokenizer with a hand-made config, to check template selection and the render variables.
    private func tokenizer(templates: [String: String], bos: String? = "<s>") throws -> Tokenizer {
        try Tokenizer(
            tokenizerJSON: Self.tinyTokenizerJSON, config: TokenizerConfig(bosToken: bos, eosToken: "</s>", chatTemplates: templates))
    }

    func testTemplateSelectionFollowsTransformers() throws {
        let tok = try tokenizer(templates: [
            "default": "D{{ bos_token }}{{ tools }}", "tool_use": "T{{ tools | length }}", "rag": "R{{ documents }}",
        ])
        let msgs: [JinjaValue] = [["role": "user", "content": "x"]]
        XCTAssertEqual(try tok.applyChatTemplate(messages: msgs, addGenerationPrompt: false), "D<s>None")
        XCTAssertEqual(try tok.applyChatTemplate(messages: msgs, tools: [["type": "function"]], addGenerationPrompt: false), "T1")
        XCTAssertEqual(try tok.applyChatTemplate(messages: msgs, addGenerationPrompt: false, templateName: "rag"), "RNone")
        XCTAssertEqual(
            try tok.applyChatTemplate(messages: msgs, addGenerationPrompt: true, templateName: "{{ messages[0].content }}{{ add_generation_prompt }}"),
            "xTrue")
        XCTAssertThrowsError(try tok.applyChatTemplate(messages: msgs, addGenerationPrompt: false, templateName: "nope")) {
            let e = $0 as? ChatTemplateError
            XCTAssertEqual(e?.kind, .missingTemplate)
            XCTAssertEqual(e?.message, "no chat template named 'nope' (available: 'default', 'rag', 'tool_use')")
        }
        XCTAssertThrowsError(try tokenizer(templates: [:]).applyChatTemplate(messages: msgs, addGenerationPrompt: false)) {
            XCTAssertEqual(($0 as? ChatTemplateError)?.kind, .missingTemplate)
        }
        XCTAssertThrowsError(try tokenizer(templates: ["a": "A", "b": "B"]).applyChatTemplate(messages: msgs, addGenerationPrompt: false)) {
            XCTAssertEqual(($0 as? ChatTemplateError)?.kind, .missingTemplate)
        }
        XCTAssertEqual(try tokenizer(templates: ["only": "O"]).applyChatTemplate(messages: msgs, addGenerationPrompt: false), "O")
    }

    func testSpecialTokensAndExtraContext() throws {
        let tok = try tokenizer(
            templates: ["default": "[{{ bos_token }}|{{ eos_token }}|{{ pad_token is defined }}|{{ enable_thinking }}|{{ messages | length }}]"],
            bos: nil)
        XCTAssertEqual(try tok.applyChatTemplate(messages: [], addGenerationPrompt: false), "[|</s>|False||0]")
        // chat_template_kwargs override special tokens but never the fixed variables.
        XCTAssertEqual(
            try tok.applyChatTemplate(
                messages: [["role": "user", "content": "x"]], addGenerationPrompt: false,
                extraContext: ["bos_token": "<B>", "enable_thinking": false, "messages": []]),
            "[<B>|</s>|False|False|1]")
        let bad = try tokenizer(templates: ["default": "{% if %}"])
        XCTAssertThrowsError(try bad.applyChatTemplate(messages: [], addGenerationPrompt: false)) {
            XCTAssertEqual(($0 as? ChatTemplateError)?.kind, .syntax)
        }
    }
}
