// The real chat templates in shared/conformance/chat_templates against transformers' renderings.

import Foundation
import XCTest

@testable import PagodaTokenizer

/// shared/conformance: $PAGODA_CONFORMANCE, else ../shared/conformance next to the repository root.
func conformanceDirectory() -> URL {
    if let env = ProcessInfo.processInfo.environment["PAGODA_CONFORMANCE"], !env.isEmpty {
        return URL(fileURLWithPath: env)
    }
    let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return repoRoot.appendingPathComponent("../shared/conformance").standardized
}

/// One line of chat_templates/cases.jsonl.
struct ChatTemplateCase {
    let template: String
    let name: String
    let messages: [JinjaValue]
    let tools: [JinjaValue]?
    let addGenerationPrompt: Bool
    let specialTokens: [String: String]
    let extraContext: [String: JinjaValue]
    let rendered: String

    init(_ v: JinjaValue) throws {
        guard case .dict(let d) = v, case .string(let t)? = d["template"], case .string(let n)? = d["case"],
            case .list(let m)? = d["messages"], case .bool(let g)? = d["add_generation_prompt"],
            case .string(let r)? = d["rendered"]
        else { throw ChatTemplateError(.runtime, "malformed case line") }
        template = t
        name = n
        messages = m
        addGenerationPrompt = g
        rendered = r
        if case .list(let tl)? = d["tools"] { tools = tl } else { tools = nil }
        var special: [String: String] = [:]
        for key in ["bos_token", "eos_token", "pad_token", "unk_token"] {
            if case .string(let s)? = d[key] { special[key] = s }
        }
        specialTokens = special
        var extra: [String: JinjaValue] = [:]
        if case .dict(let e)? = d["extra_context"] { for (k, v) in e.items { extra[k] = v } }
        extraContext = extra
    }
}

final class ChatTemplateConformanceTests: XCTestCase {
    let dir = conformanceDirectory().appendingPathComponent("chat_templates")

    func loadCases() throws -> [ChatTemplateCase] {
        let text = try String(contentsOf: dir.appendingPathComponent("cases.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").filter { !$0.isEmpty }.map { try ChatTemplateCase(JinjaValue(jsonString: String($0))) }
    }

    func template(_ file: String) throws -> JinjaTemplate {
        try JinjaTemplate(source: String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8))
    }

    func testEveryCaseRendersByteForByte() throws {
        let cases = try loadCases()
        XCTAssertEqual(cases.count, 87)
        var templates: [String: JinjaTemplate] = [:]
        var passed = 0
        for c in cases {
            if templates[c.template] == nil { templates[c.template] = try template(c.template) }
            let out = try templates[c.template]!.renderChat(
                messages: c.messages, tools: c.tools, addGenerationPrompt: c.addGenerationPrompt,
                specialTokens: c.specialTokens, extraContext: c.extraContext)
            if out == c.rendered && out.utf8.elementsEqual(c.rendered.utf8) {
                passed += 1
            } else {
                XCTFail("\(c.template) \(c.name) gen=\(c.addGenerationPrompt):\n--- got\n\(out)\n--- want\n\(c.rendered)")
            }
        }
        XCTAssertEqual(passed, cases.count)
        XCTAssertEqual(templates.count, 9, "every template file has cases")
    }

    /// skipped.json lists the renders the reference rejected (gemma-2 has no system role): they must
    /// raise with the template's own message.
    func testRejectedCombinationsRaiseTheTemplateMessage() throws {
        let skipped = try JinjaValue(json: Data(contentsOf: dir.appendingPathComponent("skipped.json")))
        guard case .dict(let top) = skipped, case .list(let entries)? = top["skipped"] else { return XCTFail("bad skipped.json") }
        // The skipped entries name a case; its messages are the same in every template's cases.
        var messagesByCase: [String: [JinjaValue]] = [:]
        var specialByTemplate: [String: [String: String]] = [:]
        for c in try loadCases() {
            messagesByCase[c.name] = c.messages
            specialByTemplate[c.template] = c.specialTokens
        }
        var checked = 0
        for entry in entries {
            guard case .dict(let e) = entry, case .string(let reason)? = e["reason"], reason.hasPrefix("TemplateError: "),
                case .string(let file)? = e["template"], case .string(let caseName)? = e["case"],
                case .bool(let gen)? = e["add_generation_prompt"]
            else { continue }
            let expected = String(reason.dropFirst("TemplateError: ".count))
            let messages = try XCTUnwrap(messagesByCase[caseName], caseName)
            XCTAssertThrowsError(
                try template(file).renderChat(
                    messages: messages, addGenerationPrompt: gen, specialTokens: specialByTemplate[file] ?? [:])
            ) { error in
                guard let e = error as? ChatTemplateError else { return XCTFail("not a ChatTemplateError: \(error)") }
                XCTAssertEqual(e.kind, .raised)
                XCTAssertEqual(e.message, expected)
                XCTAssertEqual(e.description, expected)
            }
            checked += 1
        }
        XCTAssertEqual(checked, 4, "gemma system_user x2 and multi_turn x2")
    }

    /// Every template renders a generation prompt for a plain user turn and ends with the assistant header.
    func testEveryTemplateRendersAGenerationPrompt() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".jinja") }.sorted()
        XCTAssertEqual(files.count, 9)
        let expectedEndings: [String: String] = [
            "HuggingFaceTB-SmolLM3-3B.jinja": "<|im_start|>assistant\n",
            "Qwen-Qwen2.5-7B-Instruct.jinja": "<|im_start|>assistant\n",
            "Qwen-Qwen3-0.6B.jinja": "<|im_start|>assistant\n",
            "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja": "<｜Assistant｜><think>\n</think>",
            "google-gemma-2-2b-it.jinja": "<start_of_turn>model\n",
            "meta-llama-Llama-3.1-8B-Instruct.jinja": "<|start_header_id|>assistant<|end_header_id|>\n\n",
            "meta-llama-Llama-3.2-3B-Instruct.jinja": "<|start_header_id|>assistant<|end_header_id|>\n\n",
            "microsoft-Phi-3.5-mini-instruct.jinja": "<|assistant|>\n",
            "mistralai-Mistral-Nemo-Instruct-2407.jinja": "[/INST]",
        ]
        for file in files {
            let out = try template(file).renderChat(
                messages: [["role": "user", "content": "Hi there"]], addGenerationPrompt: true,
                specialTokens: ["bos_token": "<s>", "eos_token": "</s>"], extraContext: ["date_string": "26 Jul 2024"])
            XCTAssertTrue(out.contains("Hi there"), file)
            XCTAssertTrue(out.hasSuffix(try XCTUnwrap(expectedEndings[file], file)), "\(file): \(out)")
        }
    }

    /// continue_final_message: the prompt ends inside the last (assistant) message; when the template trims
    /// the message (gemma's `| trim`), the cut follows the trimmed text. Expected text from transformers' rule.
    func testContinueFinalMessage() throws {
        let messages: [JinjaValue] = [["role": "user", "content": "Count to 3"], ["role": "assistant", "content": "1, 2, "]]
        let qwen = try template("Qwen-Qwen2.5-7B-Instruct.jinja").renderChat(
            messages: messages, addGenerationPrompt: false, continueFinalMessage: true)
        XCTAssertEqual(
            qwen,
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nCount to 3<|im_end|>\n<|im_start|>assistant\n1, 2, ")
        let gemma = try template("google-gemma-2-2b-it.jinja").renderChat(
            messages: messages, addGenerationPrompt: false, specialTokens: ["bos_token": "<bos>"], continueFinalMessage: true)
        XCTAssertEqual(gemma, "<bos><start_of_turn>user\nCount to 3<end_of_turn>\n<start_of_turn>model\n1, 2,")
        XCTAssertThrowsError(
            try template("google-gemma-2-2b-it.jinja").renderChat(messages: messages, addGenerationPrompt: true, continueFinalMessage: true))
        XCTAssertThrowsError(
            try JinjaTemplate(source: "nothing").renderChat(messages: messages, addGenerationPrompt: false, continueFinalMessage: true)
        ) { XCTAssertEqual(($0 as? ChatTemplateError)?.kind, .runtime) }
    }

    /// Qwen3 with `enable_thinking=False` (chat_template_kwargs) closes an empty think block;
    /// expected text from jinja2 3.1.6 with transformers' settings.
    func testQwen3EnableThinkingFalse() throws {
        let qwen3 = try template("Qwen-Qwen3-0.6B.jinja")
        let messages: [JinjaValue] = [
            ["role": "system", "content": "You are terse."],
            ["role": "user", "content": "2+2?"],
        ]
        let off = try qwen3.renderChat(
            messages: messages, addGenerationPrompt: true, specialTokens: ["eos_token": "<|im_end|>"],
            extraContext: ["enable_thinking": false])
        XCTAssertEqual(
            off,
            "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")
        let on = try qwen3.renderChat(
            messages: messages, addGenerationPrompt: true, specialTokens: ["eos_token": "<|im_end|>"],
            extraContext: ["enable_thinking": true])
        XCTAssertEqual(on, "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n")
    }
}
