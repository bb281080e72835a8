import Foundation
import XCTest

@testable import PagodaEngine

/// Tensor and pipeline parallelism through real worker processes (`MultiprocExecutor`): every
/// conformance model at T=2, P=2 and T=2 × P=2 gives reference.json's greedy tokens and top logits,
/// with all prompts batched, prefill chunked and requests preempted.
final class ParallelConformanceTests: XCTestCase {
    struct Reference: Decodable {
        struct Prompt: Decodable {
            struct Step: Decodable { let token: Int; let top10: [[Double]]; let margin_top1_top2: Double }
            let name: String
            let prompt_ids: [Int]
            let generated_ids: [Int]
            let steps: [Step]
        }
        let prompts: [Prompt]
    }

    static var conformanceModels: String {
        if let p = ProcessInfo.processInfo.environment["PAGODA_CONFORMANCE"] { return p + "/models" }
        // Tests/PagodaEngineTests/<file> → repo root → ../shared/conformance
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent("../shared/conformance/models").standardized.path
    }

    /// Logit tolerance: reference logits are float32 from bf16 weights; Pagoda computes in float32 too, and
    /// TP only reorders sums (README: 1e-3 typical, 1e-2 safe).
    static let logitTolerance = 1e-2

    func makeConfig(model: String, tp: Int, pp: Int, transport: ParallelConfig.Transport? = nil) -> EngineConfig {
        EngineConfig(
            model: ModelLoadConfig(path: model, dtype: .float32, maxModelLen: 384, threads: 1),
            // 28 blocks of 16 tokens: 24 are one request at max-model-len, far less than the prompts need
            // together (~530 tokens, the long one alone 317-349 + 24), so the scheduler must preempt.
            cache: CacheConfig(blockSize: 16, enablePrefixCaching: true, numBlocksOverride: 28),
            // 64-token budget: the 316-token prompt is prefilled in 5 chunks.
            scheduler: SchedulerConfig(maxNumSeqs: 8, maxNumBatchedTokens: 64, enableChunkedPrefill: true),
            parallel: ParallelConfig(tensorParallelSize: tp, pipelineParallelSize: pp, distributedExecutorBackend: .mp,
                                     transport: transport),
            seed: 0)
    }

    /// Runs every prompt of `ref` at once; checks tokens (margin rule) and top-10 logprob gaps.
    func check(modelDir: String, name: String, tp: Int, pp: Int, transport: ParallelConfig.Transport? = nil) throws {
        let ref = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: modelDir + "/reference.json")))
        let config = makeConfig(model: modelDir, tp: tp, pp: pp, transport: transport)
        let core = try EngineCore(config: config, executor: MultiprocExecutor(config: config))
        defer { core.shutdown() }
        var sampling = SamplingParams.greedy
        sampling.maxTokens = ref.prompts[0].steps.count
        sampling.ignoreEOS = true
        sampling.logprobs = 10
        for (i, p) in ref.prompts.enumerated() {
            try core.addRequest(EngineRequest(requestId: "r\(i)", promptTokenIds: p.prompt_ids, sampling: sampling, eosTokenIds: [], arrivalTime: 0))
        }
        var tokens: [String: [Int]] = [:]
        var logprobs: [String: [TokenLogprob]] = [:]
        var steps = 0
        while core.hasUnfinishedRequests {
            for o in try core.step() {
                tokens[o.requestId, default: []] += o.newTokenIds
                logprobs[o.requestId, default: []] += o.newLogprobs ?? []
                XCTAssertNil(o.error, o.error ?? "")
            }
            steps += 1
            XCTAssertLessThan(steps, 2000, "engine did not finish")
            if steps >= 2000 { return }
        }
        let where_ = "\(name) T=\(tp) P=\(pp)"
        XCTAssertGreaterThan(core.stats.numPreemptions, 0, "\(where_): the run should preempt")
        XCTAssertTrue(core.kvCacheIsWhole, "\(where_): block pool not whole")
        for (i, p) in ref.prompts.enumerated() {
            let got = tokens["r\(i)"] ?? []
            let lps = logprobs["r\(i)"] ?? []
            XCTAssertEqual(got.count, p.steps.count, "\(where_) \(p.name): token count")
            XCTAssertEqual(lps.count, got.count, "\(where_) \(p.name): logprob count")
            for (k, step) in p.steps.enumerated() where k < got.count && k < lps.count {
                // Top logits: the gap of each reference top-10 token to the top-1 token equals the
                // engine's logprob gap (logprobs are logits shifted by one constant).
                let top = Dictionary(lps[k].top.map { ($0.tokenId, Double($0.logprob)) }, uniquingKeysWith: { a, _ in a })
                let refTop1 = step.top10[0][1]
                if let engineTop1 = top[Int(step.top10[0][0])] {
                    for e in step.top10.prefix(5) {
                        guard let lp = top[Int(e[0])] else { continue }
                        XCTAssertEqual(lp - engineTop1, e[1] - refTop1, accuracy: Self.logitTolerance,
                                       "\(where_) \(p.name) step \(k): token \(Int(e[0])) logit gap")
                    }
                } else {
                    XCTAssertLessThan(step.margin_top1_top2, Self.logitTolerance, "\(where_) \(p.name) step \(k): reference top-1 missing")
                }
                if got[k] != step.token {
                    // Allowed only where the reference itself is a near tie; the rest is then not comparable.
                    XCTAssertLessThan(step.margin_top1_top2, Self.logitTolerance,
                                      "\(where_) \(p.name) step \(k): token \(got[k]) != reference \(step.token)")
                    break
                }
            }
        }
    }

    func models() throws -> [(String, String)] {
        let dir = Self.conformanceModels
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).filter {
            FileManager.default.fileExists(atPath: "\(dir)/\($0)/reference.json")
        }.sorted()
        XCTAssertFalse(names.isEmpty, "no conformance models in \(dir)")
        return names.map { ($0, "\(dir)/\($0)") }
    }

    func testTensorParallel2() throws {
        for (name, dir) in try models() { try check(modelDir: dir, name: name, tp: 2, pp: 1) }
    }

    func testPipelineParallel2() throws {
        for (name, dir) in try models() { try check(modelDir: dir, name: name, tp: 1, pp: 2) }
    }

    /// The same run with the groups over TCP instead of shared memory (ranks on other hosts).
    func testTensorParallel2OverTCP() throws {
        let dir = Self.conformanceModels
        try check(modelDir: dir + "/tiny-llama3", name: "tiny-llama3 (tcp)", tp: 2, pp: 2, transport: .tcp)
    }

    func testTensor2TimesPipeline2() throws {
        for (name, dir) in try models() { try check(modelDir: dir, name: name, tp: 2, pp: 2) }
    }
}
