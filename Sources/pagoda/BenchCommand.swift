import ArgumentParser

/// `pagoda bench`: the benchmarks, after vLLM's `vllm bench` commands.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks (serve, throughput, latency, kv-transfer).",
        subcommands: [
            BenchServeCommand.self, BenchThroughputCommand.self, BenchLatencyCommand.self, BenchKVTransferCommand.self,
        ])
}
