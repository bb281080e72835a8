import ArgumentParser

/// `pagoda bench`: the benchmarks, after vLLM's `vllm bench` commands.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks (serve, throughput, latency).",
        subcommands: [BenchServeCommand.self, BenchThroughputCommand.self, BenchLatencyCommand.self])
}
