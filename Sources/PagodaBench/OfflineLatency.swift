import Foundation
import PagodaEngine
import PagodaStructured

/// `pagoda bench latency` (vLLM's `bench latency`): the time to run one batch of `batchSize` random
/// prompts of `inputLen` tokens to `outputLen` tokens each, over `numIters` iterations after
/// `numItersWarmup`. Each iteration uses fresh prompts (no prefix-cache hits). The step by which every
/// request has its first token ends the prefill; the rest is decode, whose rate counts the tokens that
/// arrive (with pipeline micro-batches a step carries tokens for only part of the batch).
public struct OfflineLatencyBenchmark {
    public var inputLen: Int
    public var outputLen: Int
    public var batchSize: Int
    public var numItersWarmup: Int
    public var numIters: Int
    public var seed: UInt64
    public var greedy: Bool
    /// Constrain every request (e.g. a JSON schema): measures the token mask's cost per decode step.
    public var structuredOutputs: StructuredOutputSpec? = nil

    public init(inputLen: Int, outputLen: Int, batchSize: Int, numItersWarmup: Int, numIters: Int, seed: UInt64 = 0,
                greedy: Bool = false) {
        self.inputLen = inputLen; self.outputLen = outputLen; self.batchSize = batchSize
        self.numItersWarmup = numItersWarmup; self.numIters = numIters; self.seed = seed; self.greedy = greedy
    }

    public struct Result: Codable, Sendable {
        /// Seconds per iteration.
        public var latencies: [Double]
        public var avgLatency: Double
        public var percentiles: [String: Double]
        /// Mean time until the batch's first tokens (prefill), seconds.
        public var avgPrefillLatency: Double
        /// Mean seconds between two tokens of one request during decode (batchSize / decode tokens per second).
        public var avgPerTokenLatency: Double
        /// Decode tokens per second over the batch (tokens after the prefill / decode time).
        public var decodeTokensPerSecond: Double
        public var prefillTokensPerSecond: Double

        enum CodingKeys: String, CodingKey {
            case latencies, percentiles
            case avgLatency = "avg_latency", avgPrefillLatency = "avg_prefill_latency"
            case avgPerTokenLatency = "avg_per_token_latency", decodeTokensPerSecond = "decode_tokens_per_second"
            case prefillTokensPerSecond = "prefill_tokens_per_second"
        }

        public var summary: String {
            var s = String(format: "Avg latency: %.6f seconds\n", avgLatency)
            for p in ["10", "25", "50", "75", "90", "99"] {
                s += String(format: "%@%% percentile latency: %.6f seconds\n", p, percentiles[p] ?? 0)
            }
            s += String(format: "Prefill: %.4f s (%.1f tokens/s)\n", avgPrefillLatency, prefillTokensPerSecond)
            s += String(format: "Per-token latency (decode step): %.3f ms, decode throughput: %.2f tokens/s",
                        avgPerTokenLatency * 1000, decodeTokensPerSecond)
            return s
        }
    }

    public func run(_ engine: EngineCore, progress: (String) -> Void = { _ in }) throws -> Result {
        var maker = OfflinePromptMaker(vocabSize: engine.modelInfo.vocabSize, seed: seed)
        var sampling = offlineBenchSampling(outputLen: outputLen, greedy: greedy)
        sampling.structuredOutputs = structuredOutputs
        // A finished document can only be followed by EOS (repeated, as EOS is ignored): min_tokens would forbid it.
        if structuredOutputs != nil { sampling.minTokens = 0 }
        let eos = structuredOutputs != nil ? engine.modelInfo.eosTokenIds : []
        var latencies: [Double] = [], prefills: [Double] = [], perToken: [Double] = []
        for iter in 0..<(numItersWarmup + numIters) {
            let prompts = maker.prompts(count: batchSize, length: inputLen)
            let start = DispatchTime.now().uptimeNanoseconds
            for (i, p) in prompts.enumerated() {
                try engine.addRequest(EngineRequest(requestId: "lat-\(iter)-\(i)", promptTokenIds: p, sampling: sampling,
                                                    eosTokenIds: eos, arrivalTime: 0))
            }
            var started = Set<String>()
            var prefillEnd = start
            var decodeTokens = 0
            while engine.hasUnfinishedRequests {
                let outs = try engine.step()
                if started.count < batchSize {
                    for o in outs where !o.newTokenIds.isEmpty { started.insert(o.requestId) }
                    if started.count >= batchSize { prefillEnd = DispatchTime.now().uptimeNanoseconds }
                } else {
                    for o in outs { decodeTokens += o.newTokenIds.count }
                }
            }
            let end = DispatchTime.now().uptimeNanoseconds
            if iter >= numItersWarmup {
                latencies.append(Double(end - start) / 1e9)
                prefills.append(Double(prefillEnd - start) / 1e9)
                if decodeTokens > 0 {
                    perToken.append(Double(end - prefillEnd) / 1e9 * Double(batchSize) / Double(decodeTokens))
                }
                progress(String(format: "iteration %d/%d: %.4f s", iter - numItersWarmup + 1, numIters, latencies.last!))
            }
        }
        let avg = latencies.reduce(0, +) / Double(max(1, latencies.count))
        let avgPrefill = prefills.reduce(0, +) / Double(max(1, prefills.count))
        let avgTok = perToken.isEmpty ? 0 : perToken.reduce(0, +) / Double(perToken.count)
        var pct: [String: Double] = [:]
        for p in [10, 25, 50, 75, 90, 99] { pct["\(p)"] = percentile(latencies, Double(p)) }
        return Result(latencies: latencies, avgLatency: avg, percentiles: pct, avgPrefillLatency: avgPrefill,
                      avgPerTokenLatency: avgTok, decodeTokensPerSecond: avgTok > 0 ? Double(batchSize) / avgTok : 0,
                      prefillTokensPerSecond: avgPrefill > 0 ? Double(batchSize * inputLen) / avgPrefill : 0)
    }
}
