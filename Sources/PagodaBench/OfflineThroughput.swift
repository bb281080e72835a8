import Foundation
import PagodaEngine

/// `pagoda bench throughput` (vLLM's `bench throughput`): `numPrompts` random prompts of `inputLen`
/// tokens, each generating exactly `outputLen` tokens, submitted at once to one engine and run to
/// completion with continuous batching.
public struct OfflineThroughputBenchmark {
    public var inputLen: Int
    public var outputLen: Int
    public var numPrompts: Int
    public var seed: UInt64
    public var greedy: Bool

    public init(inputLen: Int, outputLen: Int, numPrompts: Int, seed: UInt64 = 0, greedy: Bool = false) {
        self.inputLen = inputLen; self.outputLen = outputLen; self.numPrompts = numPrompts; self.seed = seed; self.greedy = greedy
    }

    public struct Result: Codable, Sendable {
        public var elapsedTime: Double
        public var numRequests: Int
        public var totalNumTokens: Int
        public var totalOutputTokens: Int
        public var requestsPerSecond: Double
        public var tokensPerSecond: Double
        public var outputTokensPerSecond: Double
        public var numSteps: Int
        public var numPreemptions: Int

        enum CodingKeys: String, CodingKey {
            case elapsedTime = "elapsed_time", numRequests = "num_requests", totalNumTokens = "total_num_tokens"
            case totalOutputTokens = "total_output_tokens", requestsPerSecond = "requests_per_second"
            case tokensPerSecond = "tokens_per_second", outputTokensPerSecond = "output_tokens_per_second"
            case numSteps = "num_steps", numPreemptions = "num_preemptions"
        }

        /// vLLM's summary line plus the output rate.
        public var summary: String {
            String(format: "Throughput: %.2f requests/s, %.2f total tokens/s, %.2f output tokens/s\n", requestsPerSecond,
                   tokensPerSecond, outputTokensPerSecond)
                + "Total num prompt tokens:  \(totalNumTokens - totalOutputTokens)\n"
                + "Total num output tokens:  \(totalOutputTokens)\n"
                + String(format: "Elapsed: %.3f s in %d engine steps, %d preemptions", elapsedTime, numSteps, numPreemptions)
        }
    }

    public func run(_ engine: EngineCore) throws -> Result {
        var maker = OfflinePromptMaker(vocabSize: engine.modelInfo.vocabSize, seed: seed)
        let prompts = maker.prompts(count: numPrompts, length: inputLen)
        let sampling = offlineBenchSampling(outputLen: outputLen, greedy: greedy)
        let preemptionsBefore = engine.stats.numPreemptions
        let start = DispatchTime.now().uptimeNanoseconds
        for (i, p) in prompts.enumerated() {
            try engine.addRequest(EngineRequest(requestId: "bench-\(i)", promptTokenIds: p, sampling: sampling,
                                                eosTokenIds: [], arrivalTime: Date().timeIntervalSince1970))
        }
        var outputTokens = 0
        var steps = 0
        while engine.hasUnfinishedRequests {
            for o in try engine.step() { outputTokens += o.newTokenIds.count }
            steps += 1
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let total = numPrompts * inputLen + outputTokens
        return Result(elapsedTime: elapsed, numRequests: numPrompts, totalNumTokens: total, totalOutputTokens: outputTokens,
                      requestsPerSecond: Double(numPrompts) / elapsed, tokensPerSecond: Double(total) / elapsed,
                      outputTokensPerSecond: Double(outputTokens) / elapsed, numSteps: steps,
                      numPreemptions: engine.stats.numPreemptions - preemptionsBefore)
    }
}
