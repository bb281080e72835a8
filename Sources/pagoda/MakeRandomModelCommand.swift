import ArgumentParser
import Foundation
import PagodaModel

/// `pagoda make-random-model`: Write a random-weight model of a real shape (for benchmarks).
struct MakeRandomModelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "make-random-model",
        abstract: "Write a random-weight model of a real shape (for benchmarks).",
        discussion: """
            Writes config.json, generation_config.json and model.safetensors (bf16, seeded, small-variance \
            weights) plus the tokenizer files from --tokenizer-dir. The qwen shape defaults to the repository's \
            models/tiny-qwen3 tokenizer (the Qwen2.5 vocabulary); the repository has no Llama 3 tokenizer, so \
            the llama shape copies one only when --tokenizer-dir is given.
            """)

    @Option(help: "Shape to copy: \(RandomModelWriter.shapes.keys.sorted().joined(separator: ", ")).")
    var shape: String

    @Option(help: "Output folder (created).")
    var output: String

    @Option(help: "Random seed.")
    var seed: UInt64 = 0

    @Option(help: "Folder to copy tokenizer.json, tokenizer_config.json and special_tokens_map.json from.")
    var tokenizerDir: String?

    func validate() throws {
        guard RandomModelWriter.shapes[shape] != nil else {
            throw ValidationError("unknown --shape \(shape) (known: \(RandomModelWriter.shapes.keys.sorted().joined(separator: ", ")))")
        }
        if let dir = tokenizerDir, !FileManager.default.fileExists(atPath: dir + "/tokenizer.json") {
            throw ValidationError("--tokenizer-dir \(dir) has no tokenizer.json")
        }
    }

    func run() async throws {
        let config = RandomModelWriter.shapes[shape]!
        var tokenizerSource = tokenizerDir
        if tokenizerSource == nil && shape.hasPrefix("qwen") {
            let repoDefault = "models/tiny-qwen3"
            guard FileManager.default.fileExists(atPath: repoDefault + "/tokenizer.json") else {
                throw ValidationError("no --tokenizer-dir given and \(repoDefault)/tokenizer.json not found (run from the repository root)")
            }
            tokenizerSource = repoDefault
        }
        do {
            try RandomModelWriter.write(config: config, to: output, seed: seed)
        } catch {
            throw ValidationError("make-random-model: \(error)")
        }
        if let source = tokenizerSource {
            for file in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"] {
                let from = source + "/" + file, to = output + "/" + file
                guard FileManager.default.fileExists(atPath: from) else { continue }
                try? FileManager.default.removeItem(atPath: to)
                try FileManager.default.copyItem(atPath: from, toPath: to)
            }
            print("wrote \(shape) random model to \(output) (seed \(seed), tokenizer from \(source))")
        } else {
            print("wrote \(shape) random model to \(output) (seed \(seed)); no tokenizer written: pass --tokenizer-dir with a Llama 3 tokenizer")
        }
    }
}
