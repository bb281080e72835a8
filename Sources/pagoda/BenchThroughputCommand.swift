import ArgumentParser
import Foundation
import PagodaBench
import PagodaEngine

/// `pagoda bench throughput`: Offline throughput benchmark (vLLM's bench throughput) on random prompts.
struct BenchThroughputCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "throughput", abstract: "Offline throughput benchmark (vLLM's bench throughput) on random prompts.")

    @Argument(help: "Model folder (or use --model).") var modelPath: String?
    @Option(name: .customLong("model"), help: "Model folder.") var modelOption: String?
    @Option(name: .customLong("input-len"), help: "Prompt tokens per request.") var inputLen: Int = 128
    @Option(name: .customLong("output-len"), help: "Generated tokens per request.") var outputLen: Int = 128
    @Option(name: .customLong("num-prompts"), help: "Requests.") var numPrompts: Int = 100
    @Flag(name: .customLong("greedy"), help: "Greedy sampling (default: temperature 1, as vLLM).") var greedy = false
    @Option(name: .customLong("output-json"), help: "Write the results as JSON to this file.") var outputJSON: String?
    @OptionGroup var engineArgs: EngineArgs

    func validate() throws {
        if modelPath == nil && modelOption == nil { throw ValidationError("give a model folder (MODEL or --model)") }
        if inputLen < 1 { throw ValidationError("invalid --input-len: must be at least 1, got \(inputLen)") }
        if outputLen < 1 { throw ValidationError("invalid --output-len: must be at least 1, got \(outputLen)") }
        if numPrompts < 1 { throw ValidationError("invalid --num-prompts: must be at least 1, got \(numPrompts)") }
    }

    func run() throws {
        let config = try engineArgs.makeConfig(model: modelPath ?? modelOption!)
        let engine = try runOrExit { try EngineCore(config: config) }
        let bench = OfflineThroughputBenchmark(inputLen: inputLen, outputLen: outputLen, numPrompts: numPrompts,
                                               seed: engineArgs.seed ?? 0, greedy: greedy)
        let result = try runOrExit { try bench.run(engine) }
        print(result.summary)
        if let path = outputJSON { try writeBenchJSON(result, to: path) }
        engine.shutdown()
    }
}

/// Runs `body`; a thrown error becomes a one-line message and exit status 1.
func runOrExit<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as ExitCode { throw e } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode.failure
    }
}

func writeBenchJSON<T: Encodable>(_ value: T, to path: String) throws {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys]
    try runOrExit { try enc.encode(value).write(to: URL(fileURLWithPath: path)) }
}
