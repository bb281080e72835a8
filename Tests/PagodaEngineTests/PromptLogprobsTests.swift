import Foundation
import PagodaTestSupport
import XCTest

@testable import PagodaEngine

/// Prompt logprobs (`SamplingParams.promptLogprobs`) against the conformance references: the prompt
/// is a reference prompt followed by its greedy continuation, so each continuation position's
/// logprobs are the reference step's logits after log-softmax. The full last-position logits of
/// `long_300` give absolute values; the top-10 logits of every step give differences (log-softmax
/// shifts a row by one constant). Whole prefill, chunked prefill and a second run (the prefix cache
/// must be skipped) must agree.
final class PromptLogprobsTests: XCTestCase {
    /// The conformance README's float32 bound (1e-3 expected, 1e-2 safe).
    static let tolerance: Float = 1e-2

    func engine(_ path: URL, budget: Int) throws -> EngineCore {
        try EngineCore(
            config: EngineConfig(
                model: ModelLoadConfig(path: path.path, dtype: .float32, maxModelLen: 1024, threads: 1),
                cache: CacheConfig(blockSize: 16, enablePrefixCaching: true, numBlocksOverride: 128),
                scheduler: SchedulerConfig(maxNumSeqs: 4, maxNumBatchedTokens: budget), seed: 0))
    }

    /// Runs one request; returns its prompt logprobs (from the first output) and the outputs' count of them.
    func promptLogprobs(_ core: EngineCore, id: String, prompt: [Int], k: Int) throws -> [TokenLogprob] {
        var p = SamplingParams.greedy
        p.maxTokens = 1
        p.promptLogprobs = k
        try core.addRequest(EngineRequest(requestId: id, promptTokenIds: prompt, sampling: p, eosTokenIds: [], arrivalTime: 0))
        var got: [TokenLogprob]?
        var steps = 0
        while core.hasUnfinishedRequests {
            for o in try core.step() where o.requestId == id {
                if let lp = o.promptLogprobs {
                    XCTAssertNil(got, "prompt logprobs come once, with the first output")
                    got = lp
                }
            }
            steps += 1
            XCTAssertLessThan(steps, 1000)
        }
        return try XCTUnwrap(got)
    }

    func testPromptLogprobsMatchTheReferenceLogitsWholeChunkedAndCached() throws {
        guard let dir = ConformanceTests.conformanceDir else { throw XCTSkip("conformance data not found: skipped") }
        let name = "tiny-llama3"
        let path = dir.appendingPathComponent("models/\(name)")
        let ref = try JSONDecoder().decode(
            ConformanceTests.Reference.self,
            from: Data(contentsOf: path.appendingPathComponent("reference.json")))
        let long = try XCTUnwrap(ref.prompts.first { $0.name == "long_300" })
        let prompt = long.prompt_ids + long.generated_ids
        let k = 5

        let whole = try engine(path, budget: 2048)
        let a = try promptLogprobs(whole, id: "a", prompt: prompt, k: k)
        let again = try promptLogprobs(whole, id: "b", prompt: prompt, k: k)  // same prompt: must not come from the cache
        whole.shutdown()
        let chunked = try engine(path, budget: 48)
        let c = try promptLogprobs(chunked, id: "c", prompt: prompt, k: k)
        chunked.shutdown()

        for run in [a, again, c] {
            XCTAssertEqual(run.count, prompt.count - 1, "one entry per prompt token but the first")
            XCTAssertEqual(run.map(\.tokenId), Array(prompt.dropFirst()))
        }
        for (x, y) in zip(a, c) {
            XCTAssertEqual(x.logprob, y.logprob, accuracy: 1e-4, "chunked prefill changes nothing")
            XCTAssertEqual(x.top.map(\.tokenId), y.top.map(\.tokenId))
        }
        for (x, y) in zip(a, again) { XCTAssertEqual(x.logprob, y.logprob, accuracy: 1e-4, "a second run is the same") }

        // Absolute: the full logits at the last position of long_300 score generated_ids[0].
        let logits = try NpyFile.readFloat32(path: path.appendingPathComponent("long_300_last_prompt_logits.npy").path)
        let maxLogit = logits.max()!
        let lse = maxLogit + Float(log(logits.reduce(0.0) { $0 + exp(Double($1 - maxLogit)) }))
        let at = a[long.prompt_ids.count - 1]
        XCTAssertEqual(at.tokenId, long.generated_ids[0])
        XCTAssertEqual(at.logprob, logits[long.generated_ids[0]] - lse, accuracy: Self.tolerance)
        let refTop = logits.indices.sorted { logits[$0] > logits[$1] }.prefix(k)
        XCTAssertEqual(at.top.map(\.tokenId), Array(refTop))
        for t in at.top { XCTAssertEqual(t.logprob, logits[t.tokenId] - lse, accuracy: Self.tolerance) }
        XCTAssertEqual(at.rank, 1, "the greedy token ranks first")

        // Differences at every continuation step: logprob(id) - logprob(token) = logit(id) - logit(token), where token
        // is the reference's greedy pick (its top 1) and is the prompt token scored there.
        var compared = 0
        for (s, step) in long.steps.enumerated() {
            let entry = a[long.prompt_ids.count - 1 + s]
            XCTAssertEqual(entry.tokenId, step.token)
            if step.margin_top1_top2 > Double(Self.tolerance) { XCTAssertEqual(entry.top.first?.tokenId, step.token, "step \(s)") }
            let refLogits = Dictionary(step.top10.map { (Int($0[0]), Float($0[1])) }, uniquingKeysWith: { x, _ in x })
            let refBest = Float(step.top10[0][1])
            for t in entry.top {
                guard let r = refLogits[t.tokenId] else { continue }
                XCTAssertEqual(t.logprob - entry.logprob, r - refBest, accuracy: Self.tolerance, "step \(s) token \(t.tokenId)")
                compared += 1
            }
        }
        XCTAssertGreaterThanOrEqual(compared, long.steps.count * (k - 1), "the top \(k) should be among the reference's top 10")
    }

    /// Worker processes: every TP rank must gather the same logits rows (non-driver ranks keep
    /// `promptLogprobs`), and the last pipeline stage computes them; the values equal one process's.
    func testTensorAndPipelineParallelGiveTheSamePromptLogprobs() throws {
        guard let dir = ConformanceTests.conformanceDir else { throw XCTSkip("conformance data not found: skipped") }
        let path = dir.appendingPathComponent("models/tiny-qwen2")
        let ref = try JSONDecoder().decode(
            ConformanceTests.Reference.self,
            from: Data(contentsOf: path.appendingPathComponent("reference.json")))
        let medium = try XCTUnwrap(ref.prompts.first { $0.name == "medium_40" })
        let prompt = medium.prompt_ids + medium.generated_ids
        let single = try engine(path, budget: 16)
        let expected = try promptLogprobs(single, id: "s", prompt: prompt, k: 4)
        single.shutdown()
        for (tp, pp) in [(2, 1), (2, 2)] {
            let config = EngineConfig(
                model: ModelLoadConfig(path: path.path, dtype: .float32, maxModelLen: 256, threads: 1),
                cache: CacheConfig(blockSize: 16, enablePrefixCaching: true, numBlocksOverride: 32),
                scheduler: SchedulerConfig(maxNumSeqs: 4, maxNumBatchedTokens: 16, enableChunkedPrefill: true),
                parallel: ParallelConfig(tensorParallelSize: tp, pipelineParallelSize: pp, distributedExecutorBackend: .mp), seed: 0)
            let core = try EngineCore(config: config, executor: MultiprocExecutor(config: config))
            let got = try promptLogprobs(core, id: "p", prompt: prompt, k: 4)
            core.shutdown()
            XCTAssertEqual(got.count, expected.count, "tp \(tp) pp \(pp)")
            for (x, y) in zip(got, expected) {
                XCTAssertEqual(x.tokenId, y.tokenId)
                XCTAssertEqual(x.logprob, y.logprob, accuracy: 1e-3, "tp \(tp) pp \(pp)")
                XCTAssertEqual(x.top.count, 4)
            }
        }
    }

    func testRequestsWithoutPromptLogprobsGetNone() throws {
        guard let dir = ConformanceTests.conformanceDir else { throw XCTSkip("conformance data not found: skipped") }
        let core = try engine(dir.appendingPathComponent("models/tiny-qwen3"), budget: 64)
        defer { core.shutdown() }
        try core.addRequest(
            EngineRequest(
                requestId: "x", promptTokenIds: Array(1...40), sampling: greedy(maxTokens: 2),
                eosTokenIds: [], arrivalTime: 0))
        while core.hasUnfinishedRequests { for o in try core.step() { XCTAssertNil(o.promptLogprobs) } }
    }
}
