import ArgumentParser
import Foundation
import PagodaBench
import PagodaEngine
import PagodaStructured

/// `pagoda bench latency`: Offline latency benchmark (vLLM's bench latency) for one batch of random prompts.
struct BenchLatencyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "latency", abstract: "Offline latency benchmark (vLLM's bench latency) for one batch of random prompts.")

    @Argument(help: "Model folder (or use --model).") var modelPath: String?
    @Option(name: .customLong("model"), help: "Model folder.") var modelOption: String?
    @Option(name: .customLong("input-len"), help: "Prompt tokens per request.") var inputLen: Int = 32
    @Option(name: .customLong("output-len"), help: "Generated tokens per request.") var outputLen: Int = 128
    @Option(name: .customLong("batch-size"), help: "Requests in the batch.") var batchSize: Int = 8
    @Option(name: .customLong("num-iters-warmup"), help: "Iterations before measuring.") var numItersWarmup: Int = 2
    @Option(name: .customLong("num-iters"), help: "Measured iterations.") var numIters: Int = 5
    @Flag(name: .customLong("greedy"), help: "Greedy sampling (default: temperature 1, as vLLM).") var greedy = false
    @Option(name: .customLong("output-json"), help: "Write the results as JSON to this file.") var outputJSON: String?
    @Option(
        name: .customLong("json-schema"),
        help: "Constrain every request with this JSON schema file (structured outputs) and report its one-time costs.")
    var jsonSchema: String?
    @OptionGroup var engineArgs: EngineArgs

    func validate() throws {
        if modelPath == nil && modelOption == nil { throw ValidationError("give a model folder (MODEL or --model)") }
        for (name, v, min) in [
            ("--input-len", inputLen, 1), ("--output-len", outputLen, 1), ("--batch-size", batchSize, 1),
            ("--num-iters-warmup", numItersWarmup, 0), ("--num-iters", numIters, 1),
        ] where v < min {
            throw ValidationError("invalid \(name): must be at least \(min), got \(v)")
        }
    }

    func run() throws {
        let model = modelPath ?? modelOption!
        var config = try engineArgs.makeConfig(model: model)
        config.scheduler.maxNumSeqs = max(config.scheduler.maxNumSeqs, batchSize)
        config.scheduler.maxNumBatchedTokens = max(config.scheduler.maxNumBatchedTokens, batchSize * inputLen)
        let engine = try runOrExit { try EngineCore(config: config) }
        var spec: StructuredOutputSpec? = nil
        if let path = jsonSchema {
            let text = try runOrExit { try String(contentsOfFile: path, encoding: .utf8) }
            spec = .jsonSchema(text)
            let tokenizer = try runOrExit { try ModelTokenizer.load(model) }
            print(
                try runOrExit {
                    try StructuredCompileBenchmark.run(
                        spec: spec!, tokenizer: tokenizer, batchSize: batchSize, steps: outputLen,
                        eosTokenIds: engine.modelInfo.eosTokenIds)
                }.summary)
        }
        let bench = OfflineLatencyBenchmark(
            inputLen: inputLen, outputLen: outputLen, batchSize: batchSize,
            numItersWarmup: numItersWarmup, numIters: numIters,
            seed: engineArgs.seed ?? 0, greedy: greedy)
        var benchmark = bench
        benchmark.structuredOutputs = spec
        let result = try runOrExit { try benchmark.run(engine) { print($0) } }
        print(result.summary)
        if let path = outputJSON { try writeBenchJSON(result, to: path) }
        engine.shutdown()
    }
}
