import ArgumentParser
import Foundation
import PagodaEngine

/// `pagoda bench kv-transfer`: the TCP KV connector's bandwidth over loopback next to a memcpy of the same
/// blocks (`KVTransferBenchmark`), for a model's KV shape (default Qwen2.5-0.5B's).
struct BenchKVTransferCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kv-transfer",
        abstract: "KV transfer bandwidth over loopback (prefill/decode disaggregation) versus memcpy of the same bytes.")

    @Option(name: .customLong("tokens"), help: "Prompt tokens whose KV is transferred.") var tokens: Int = 4096
    @Option(name: .customLong("num-layers"), help: "Layers (Qwen2.5-0.5B: 24).") var numLayers: Int = 24
    @Option(name: .customLong("num-kv-heads"), help: "KV heads (Qwen2.5-0.5B: 2).") var numKVHeads: Int = 2
    @Option(name: .customLong("head-dim"), help: "Floats per head (Qwen2.5-0.5B: 64).") var headDim: Int = 64
    @Option(name: .customLong("block-size"), help: "Tokens per KV block.") var blockSize: Int = 16
    @Option(name: .customLong("producer-tp"), help: "Tensor-parallel ranks of the producer (each serves its heads).")
    var producerTP: Int = 1
    @Option(name: .customLong("num-iters"), help: "Measured transfers (after one checked warm-up).") var numIters: Int = 5
    @Option(
        name: .customLong("connections-per-rank"), parsing: .upToNextOption,
        help:
            "Connections the consumer opens to each producer rank (each reads a range of layers; 1-16); several values are measured side by side, e.g. 1 2 4 (default: the connector's, 2 per transfer split over the producer's ranks)."
    )
    var connectionsPerRank: [Int] = []

    func validate() throws {
        for (name, v) in [
            ("--tokens", tokens), ("--num-layers", numLayers), ("--num-kv-heads", numKVHeads), ("--head-dim", headDim),
            ("--block-size", blockSize), ("--producer-tp", producerTP), ("--num-iters", numIters),
        ] where v < 1 {
            throw ValidationError("invalid \(name): must be at least 1, got \(v)")
        }
        if connectionsPerRank.contains(where: { $0 < 1 || $0 > 16 }) {
            throw ValidationError("invalid --connections-per-rank: each must be in [1, 16], got \(connectionsPerRank)")
        }
        if numKVHeads % producerTP != 0 {
            throw ValidationError("invalid --producer-tp: \(producerTP) does not divide --num-kv-heads \(numKVHeads)")
        }
    }

    func run() throws {
        let shape = KVTransferBenchmark.Shape(numLayers: numLayers, numKVHeads: numKVHeads, headDim: headDim, blockSize: blockSize)
        let r = try runOrExit {
            try KVTransferBenchmark.run(
                shape: shape, tokens: tokens, producerTP: producerTP, iterations: numIters, connectionsPerRank: connectionsPerRank
            ) { print($0) }
        }
        print(r.summary)
    }
}
