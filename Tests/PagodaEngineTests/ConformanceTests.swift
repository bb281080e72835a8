import Foundation
import XCTest
@testable import PagodaEngine

/// Every tiny model of ../shared/conformance/models must reproduce its reference.json (greedy tokens
/// and top-10 logits, float32 compute) through the whole engine: each prompt alone, all in one
/// batch, with the prefix cached, with chunked prefill (32-token budget), and with a KV cache so
/// small that requests are preempted and recomputed.
final class ConformanceTests: XCTestCase {
    /// README: float32 forward from bf16 weights is within 1e-3 of the reference; 1e-2 is the safe bound.
    static let tolerance: Float = 1e-2

    struct Reference: Decodable {
        struct Step: Decodable {
            var token: Int
            var top10: [[Double]]
            var margin_top1_top2: Double
        }
        struct Prompt: Decodable {
            var name: String
            var prompt_ids: [Int]
            var generated_ids: [Int]
            var steps: [Step]
        }
        var prompts: [Prompt]
    }

    static var conformanceDir: URL? {
        if let env = ProcessInfo.processInfo.environment["PAGODA_CONFORMANCE"] { return URL(fileURLWithPath: env) }
        let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let dir = repoRoot.appendingPathComponent("../shared/conformance").standardizedFileURL
        return FileManager.default.fileExists(atPath: dir.path) ? dir : nil
    }

    func models() throws -> [(String, URL, Reference)] {
        guard let dir = Self.conformanceDir else {
            throw XCTSkip("conformance data not found (../shared/conformance or PAGODA_CONFORMANCE): conformance tests skipped")
        }
        let modelsDir = dir.appendingPathComponent("models")
        let names = try FileManager.default.contentsOfDirectory(atPath: modelsDir.path).sorted()
        return try names.map { name in
            let url = modelsDir.appendingPathComponent(name)
            let ref = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: url.appendingPathComponent("reference.json")))
            return (name, url, ref)
        }
    }

    /// Records, per request and step, the largest |logit − reference| over the reference's top 10.
    final class LogitsChecker {
        let refs: [String: Reference.Prompt]
        var diffs: [String: [Float]] = [:]
        init(refs: [String: Reference.Prompt]) { self.refs = refs }
        func observe(_ ids: [String], _ logits: UnsafePointer<Float>, _ vocab: Int) {
            for (r, id) in ids.enumerated() {
                guard let ref = refs[id] else { continue }
                let k = diffs[id, default: []].count
                guard k < ref.steps.count else { continue }
                var d: Float = 0
                for pair in ref.steps[k].top10 { d = max(d, abs(logits[r * vocab + Int(pair[0])] - Float(pair[1]))) }
                diffs[id, default: []].append(d)
            }
        }
    }

    /// Runs `prompts` (index → request id "p<i>") through `core`; checks tokens and logits.
    func run(_ core: EngineCore, _ ref: Reference, only: [Int]? = nil, label: String, file: StaticString = #filePath,
             line: UInt = #line) throws {
        let indices = only ?? Array(ref.prompts.indices)
        var refs: [String: Reference.Prompt] = [:]
        for i in indices { refs["p\(i)"] = ref.prompts[i] }
        let checker = LogitsChecker(refs: refs)
        let runner = (core.executor as! UniProcExecutor).runner
        runner.logitsObserver = { checker.observe($0, $1, $2) }
        defer { runner.logitsObserver = nil }
        for i in indices {
            try core.addRequest(EngineRequest(requestId: "p\(i)", promptTokenIds: ref.prompts[i].prompt_ids,
                                              sampling: greedy(maxTokens: ref.prompts[i].generated_ids.count),
                                              eosTokenIds: [], arrivalTime: 0))
        }
        let results = try runToCompletion(core)
        for i in indices {
            let p = ref.prompts[i]
            let got = results["p\(i)"]?.tokens ?? []
            XCTAssertEqual(got.count, p.generated_ids.count, "\(label) \(p.name): token count", file: file, line: line)
            // Tokens must match until a step whose reference margin is within tolerance (there they may differ).
            var comparable = p.steps.count
            for (k, step) in p.steps.enumerated() where k < got.count {
                if got[k] != step.token {
                    if step.margin_top1_top2 > Double(Self.tolerance) {
                        XCTFail("\(label) \(p.name): step \(k) token \(got[k]) != reference \(step.token) "
                                + "(margin \(step.margin_top1_top2))", file: file, line: line)
                    }
                    comparable = k + 1
                    break
                }
            }
            // Logits: steps after the first legitimate divergence have another context: not comparable.
            let stepDiffs = checker.diffs["p\(i)"] ?? []
            XCTAssertGreaterThanOrEqual(stepDiffs.count, comparable, "\(label) \(p.name): logits rows", file: file, line: line)
            let d = stepDiffs.prefix(comparable).max() ?? .infinity
            XCTAssertLessThanOrEqual(d, Self.tolerance, "\(label) \(ref.prompts[i].name): max |logit - reference|",
                                     file: file, line: line)
        }
        XCTAssertTrue(core.kvCacheIsWhole, "\(label): block pool not whole", file: file, line: line)
    }

    /// One thread: the tiny models gain nothing from more, and a spinning pool fights a loaded CI machine.
    func engine(_ path: URL, numBlocks: Int = 256, maxModelLen: Int = 1024, budget: Int = 2048, caching: Bool = true) throws
        -> EngineCore
    {
        let config = EngineConfig(
            model: ModelLoadConfig(path: path.path, dtype: .float32, maxModelLen: maxModelLen, threads: 1),
            cache: CacheConfig(blockSize: 16, enablePrefixCaching: caching, numBlocksOverride: numBlocks),
            scheduler: SchedulerConfig(maxNumSeqs: 16, maxNumBatchedTokens: budget),
            seed: 0)
        return try EngineCore(config: config)
    }

    func testGreedyTokensAndLogitsMatchTheReference() throws {
        for (name, path, ref) in try models() {
            // Each prompt alone (no prefix caching, so nothing is shared between runs).
            let alone = try engine(path, caching: false)
            for i in ref.prompts.indices { try run(alone, ref, only: [i], label: "\(name) alone") }
            alone.shutdown()

            // All prompts in one batch, then again with their prefixes cached.
            let batch = try engine(path)
            try run(batch, ref, label: "\(name) batch")
            let hits = batch.stats.prefixCacheHits
            try run(batch, ref, label: "\(name) prefix-cached")
            XCTAssertGreaterThan(batch.stats.prefixCacheHits, hits, "\(name): the second run should hit the prefix cache")
            batch.shutdown()

            // Chunked prefill with a 32-token budget.
            let chunked = try engine(path, budget: 32)
            try run(chunked, ref, label: "\(name) chunked")
            chunked.shutdown()

            // A KV cache that holds the longest request but not all of them: the longest is admitted first, the
            // others fill the rest, and when they all grow the newest are preempted and recomputed.
            let total = ref.prompts.map { $0.prompt_ids.count + $0.generated_ids.count }
            let blocks = (total.max()! + 15) / 16 + 2
            let small = try engine(path, numBlocks: blocks, maxModelLen: blocks * 16)
            try run(small, ref, only: ref.prompts.indices.sorted { total[$0] > total[$1] }, label: "\(name) preempted")
            XCTAssertGreaterThan(small.stats.numPreemptions, 0, "\(name): the small KV cache should force a preemption")
            small.shutdown()
        }
    }

    func testSeededSampledRequestIsTheSameAloneAndInABatch() throws {
        guard let (_, path, ref) = try models().first(where: { $0.0 == "tiny-qwen3" }) ?? models().first else { return }
        var p = SamplingParams()
        p.temperature = 0.8; p.topP = 0.95; p.topK = 50; p.seed = 1234; p.maxTokens = 16; p.ignoreEOS = true
        let prompt = ref.prompts.first(where: { $0.name == "medium_40" })?.prompt_ids ?? ref.prompts[0].prompt_ids
        let core = try engine(path)
        try core.addRequest(EngineRequest(requestId: "alone", promptTokenIds: prompt, sampling: p, eosTokenIds: [], arrivalTime: 0))
        let alone = try runToCompletion(core)["alone"]!.tokens
        var other = SamplingParams(); other.temperature = 1; other.maxTokens = 20; other.ignoreEOS = true
        for (i, q) in ref.prompts.enumerated() {
            try core.addRequest(EngineRequest(requestId: "o\(i)", promptTokenIds: q.prompt_ids, sampling: other, eosTokenIds: [],
                                              arrivalTime: 0))
        }
        try core.addRequest(EngineRequest(requestId: "seeded", promptTokenIds: prompt, sampling: p, eosTokenIds: [], arrivalTime: 0))
        let batch = try runToCompletion(core)
        XCTAssertEqual(batch["seeded"]!.tokens, alone)
        XCTAssertEqual(alone.count, 16)
        XCTAssertTrue(core.kvCacheIsWhole)
    }
}
