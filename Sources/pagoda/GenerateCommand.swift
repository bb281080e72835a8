import ArgumentParser
import Foundation
import PagodaEngine
import PagodaTokenizer

/// `pagoda generate`: generate text offline for one or more prompts, batched continuously in one engine.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate", abstract: "Generate text offline for one or more prompts.")

    @Argument(help: "Model folder (config.json, *.safetensors, tokenizer files).") var model: String
    @Option(name: .customLong("prompt"), help: "A prompt (repeatable).") var prompts: [String] = []
    @Option(name: .customLong("prompts-file"), help: "A file with one prompt per line.") var promptsFile: String?
    @Flag(name: .customLong("chat"), help: "Wrap each prompt as a user message in the model's chat template.") var chat = false
    @Option(name: .customLong("max-tokens"), help: "Most tokens to generate per prompt.") var maxTokens: Int = 16
    @Option(name: .customLong("temperature"), help: "0 is greedy.") var temperature: Float = 1.0
    @Option(name: .customLong("top-p"), help: "Nucleus sampling mass.") var topP: Float = 1.0
    @Option(name: .customLong("top-k"), help: "Keep the k best tokens (-1 or 0: all).") var topK: Int = -1
    @Option(name: .customLong("min-p"), help: "Drop tokens below min-p × the best token's probability.") var minP: Float = 0
    @Flag(name: .customLong("ignore-eos"), help: "Do not stop at the end-of-sequence token.") var ignoreEOS = false
    @Flag(name: .customLong("json"),
          help: "One JSON object per line and prompt: prompt, prompt_token_ids, token_ids, text, finish_reason.")
    var json = false
    @OptionGroup var engineArgs: EngineArgs

    func validate() throws {
        if prompts.isEmpty && promptsFile == nil { throw ValidationError("give at least one --prompt or a --prompts-file") }
        if maxTokens < 1 { throw ValidationError("invalid --max-tokens: must be at least 1, got \(maxTokens)") }
        if !(temperature >= 0) { throw ValidationError("invalid --temperature: must be >= 0, got \(temperature)") }
        if !(topP > 0 && topP <= 1) { throw ValidationError("invalid --top-p: must be in (0, 1], got \(topP)") }
        if topK < -1 { throw ValidationError("invalid --top-k: must be -1, 0 or positive, got \(topK)") }
    }

    func run() throws {
        var all = prompts
        if let f = promptsFile {
            let text = try runOrExit { () throws -> String in
                do { return try String(contentsOfFile: f, encoding: .utf8) } catch {
                    throw ValidationError("cannot read --prompts-file \(f): \(error.localizedDescription)")
                }
            }
            all += text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        }
        let config = try engineArgs.makeConfig(model: model)
        let tokenizer = try runOrExit { try ModelTokenizer.load(model) }
        let template: JinjaTemplate? = try runOrExit {
            guard chat else { return nil }
            guard let source = tokenizer.config.defaultChatTemplate else {
                throw ValidationError("--chat: \(model)/tokenizer_config.json has no chat_template")
            }
            return try JinjaTemplate(source: source)
        }
        let c = tokenizer.config
        var special: [String: String] = [:]
        for (k, v) in [("bos_token", c.bosToken), ("eos_token", c.eosToken), ("pad_token", c.padToken), ("unk_token", c.unkToken)] {
            if let v { special[k] = v }
        }
        let promptIds: [[Int]] = try runOrExit {
            try all.map { p in
                guard let template else { return tokenizer.encode(p, addSpecialTokens: true) }
                // The template emits the special tokens itself (vLLM's chat path).
                let rendered = try template.renderChat(
                    messages: [try JinjaValue(foundation: ["role": "user", "content": p])], addGenerationPrompt: true,
                    specialTokens: special)
                return tokenizer.encode(rendered, addSpecialTokens: false)
            }
        }
        let llm = try runOrExit { try LLM(config: config) }
        var sampling = SamplingParams()
        sampling.maxTokens = maxTokens
        sampling.temperature = temperature
        sampling.topP = topP
        sampling.topK = topK
        sampling.minP = minP
        sampling.ignoreEOS = ignoreEOS
        sampling.seed = engineArgs.seed
        var results = try runOrExit { try llm.generate(promptTokenIds: promptIds, sampling: sampling, tokenizer: tokenizer) }
        for i in results.indices { results[i].prompt = all[i] }
        for r in results {
            if json {
                let obj: [String: Any] = [
                    "prompt": r.prompt ?? "", "prompt_token_ids": r.promptTokenIds, "token_ids": r.tokenIds,
                    "text": r.text ?? "", "finish_reason": r.finishReason?.rawValue ?? NSNull(),
                ]
                let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print("Prompt: \(r.prompt ?? "")")
                print("Output: \(r.text ?? "")")
                print("(\(r.tokenIds.count) tokens, finish_reason: \(r.finishReason?.rawValue ?? "none"))")
                print("")
            }
        }
        llm.engine.shutdown()
    }
}
