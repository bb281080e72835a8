import XCTest
@testable import PagodaEngine

/// The whole engine (scheduler, KV manager, runner, sampler) on the ToyModel, whose outputs depend on
/// every token read back through the paged cache.
final class EngineCoreTests: XCTestCase {
    private let prompts: [[Int]] = [toyPrompt(1, length: 3), toyPrompt(2, length: 17), toyPrompt(3, length: 40),
                                    toyPrompt(4, length: 1), toyPrompt(5, length: 25)]

    private func runAlone(_ prompt: [Int], _ sampling: SamplingParams) throws -> [Int] {
        let core = try makeToyEngine()
        try core.addRequest(request("x", prompt, sampling))
        return try runToCompletion(core)["x"]!.tokens
    }

    private func runBatch(_ core: EngineCore, _ sampling: SamplingParams) throws -> [[Int]] {
        for (i, p) in prompts.enumerated() { try core.addRequest(request("p\(i)", p, sampling)) }
        let r = try runToCompletion(core)
        XCTAssertTrue(core.kvCacheIsWhole, "block pool not whole after the run")
        return prompts.indices.map { r["p\($0)"]!.tokens }
    }

    func testBatchedChunkedCachedAndPreemptedRunsMatchSingleRuns() throws {
        let g = greedy(maxTokens: 12)
        let alone = try prompts.map { try runAlone($0, g) }
        XCTAssertTrue(alone.allSatisfy { $0.count == 12 })

        XCTAssertEqual(try runBatch(try makeToyEngine(), g), alone, "one batch")
        XCTAssertEqual(try runBatch(try makeToyEngine(prefixCaching: false), g), alone, "no prefix caching")

        let chunked = try makeToyEngine(maxNumBatchedTokens: 16)
        XCTAssertEqual(try runBatch(chunked, g), alone, "chunked prefill")

        // Prefix cached: run once, then again — the second run must hit and give the same tokens.
        let cached = try makeToyEngine()
        _ = try runBatch(cached, g)
        let hitsBefore = cached.stats.prefixCacheHits
        XCTAssertEqual(try runBatch(cached, g), alone, "prefix cache hit")
        XCTAssertGreaterThan(cached.stats.prefixCacheHits, hitsBefore)

        // 16 blocks of 4 tokens cannot hold all five requests: preemption by recompute.
        let small = try makeToyEngine(numBlocks: 16, maxModelLen: 64)
        XCTAssertEqual(try runBatch(small, g), alone, "with preemption")
        XCTAssertGreaterThan(small.stats.numPreemptions, 0)
    }

    func testIdenticalPromptsInOneStepShareBlocks() throws {
        let g = greedy(maxTokens: 6)
        let alone = try runAlone(prompts[2], g)
        let core = try makeToyEngine()
        for i in 0..<3 { try core.addRequest(request("same\(i)", prompts[2], g)) }
        let r = try runToCompletion(core)
        for i in 0..<3 { XCTAssertEqual(r["same\(i)"]!.tokens, alone) }
        // The 2nd and 3rd find the 1st one's full blocks (40 tokens: 9 full blocks of 4, at most 39 tokens reused).
        XCTAssertEqual(core.stats.prefixCacheHits, 2 * 36)
        XCTAssertTrue(core.kvCacheIsWhole)
    }

    func testSeededSamplingIsTheSameAloneAndInABatch() throws {
        var p = SamplingParams()
        p.temperature = 0.9; p.topP = 0.9; p.topK = 20; p.seed = 42; p.maxTokens = 10; p.ignoreEOS = true
        let alone = try runAlone(prompts[2], p)
        let core = try makeToyEngine(numBlocks: 16, maxModelLen: 64)
        var q = SamplingParams(); q.temperature = 1.0; q.maxTokens = 10; q.ignoreEOS = true
        for (i, pr) in prompts.enumerated() { try core.addRequest(request("p\(i)", pr, i == 2 ? p : q)) }
        let r = try runToCompletion(core)
        XCTAssertEqual(r["p2"]!.tokens, alone)
        XCTAssertTrue(core.kvCacheIsWhole)
        var other = p; other.seed = 43
        XCTAssertNotEqual(try runAlone(prompts[2], other), alone, "a different seed should give different tokens")
    }

    func testPromptLongerThanMaxModelLenIsRejected() throws {
        let core = try makeToyEngine(maxModelLen: 32)
        XCTAssertThrowsError(try core.addRequest(request("long", toyPrompt(1, length: 40), greedy(maxTokens: 2)))) { e in
            XCTAssertEqual(e as? EngineError, .promptTooLong(numTokens: 40, maxModelLen: 32))
        }
        XCTAssertThrowsError(try core.addRequest(request("bad", [1, 1000], greedy(maxTokens: 2))))
        var p = greedy(maxTokens: 2); p.topP = 0
        XCTAssertThrowsError(try core.addRequest(request("p", [3], p))) { e in
            XCTAssertEqual("\(e)", "invalid top_p: must be in (0, 1], got 0.0")
        }
        XCTAssertFalse(core.hasUnfinishedRequests)
    }

    func testGenerationStopsAtMaxModelLenAndAbortFreesBlocks() throws {
        let core = try makeToyEngine(maxModelLen: 20)
        try core.addRequest(request("a", toyPrompt(1, length: 15), greedy(maxTokens: 100)))
        try core.addRequest(request("b", toyPrompt(2, length: 10), greedy(maxTokens: 100)))
        let first = try core.step()
        XCTAssertEqual(first.count, 2)
        core.abortRequests(["b"])
        let r = try runToCompletion(core)
        XCTAssertEqual(r["a"]!.tokens.count, 4)  // 15 + 1 + 4 = max-model-len  // 15 + 5 = max-model-len
        XCTAssertEqual(r["a"]!.finish, .length)
        XCTAssertNil(r["b"])
        XCTAssertTrue(core.kvCacheIsWhole)
        XCTAssertEqual((core.executor as! UniProcExecutor).runner.numCachedRequests, 0)
    }

    func testEngineCoreThreadDeliversOutputsAndAborts() throws {
        let core = try makeToyEngine()
        let done = expectation(description: "finished")
        let lock = NSLock()
        var tokens: [String: [Int]] = [:]
        var finishes: [String: FinishReason] = [:]
        let thread = EngineCoreThread(core: core)
        thread.start { outs in
            lock.lock(); defer { lock.unlock() }
            for o in outs {
                tokens[o.requestId, default: []] += o.newTokenIds
                if let f = o.finishReason { finishes[o.requestId] = f }
            }
            if finishes["a"] != nil { done.fulfill() }
        }
        try thread.addRequest(request("a", prompts[1], greedy(maxTokens: 8)))
        try thread.addRequest(request("b", prompts[2], greedy(maxTokens: 10_000 - 50)))
        XCTAssertThrowsError(try thread.addRequest(request("c", toyPrompt(9, length: 500), greedy(maxTokens: 1))))
        wait(for: [done], timeout: 10)
        thread.abortRequests(["b"])
        XCTAssertTrue(try thread.utility(method: "model_info", arguments: []).contains("\"num_blocks\":64"))
        XCTAssertThrowsError(try thread.utility(method: "nope", arguments: []))
        thread.shutdown()
        XCTAssertEqual(tokens["a"], try runAlone(prompts[1], greedy(maxTokens: 8)))
        XCTAssertTrue(core.kvCacheIsWhole)
    }
}

final class LLMTests: XCTestCase {
    func testGenerateRunsAllPromptsAsOneBatchInPromptOrder() throws {
        let llm = LLM(engine: try makeToyEngine(numBlocks: 16, maxModelLen: 64))
        let prompts = (0..<6).map { toyPrompt($0, length: 5 + 7 * $0) }
        var p = greedy(maxTokens: 9)
        p.logprobs = 2
        let results = try llm.generate(promptTokenIds: prompts, sampling: p)
        XCTAssertEqual(results.map(\.promptTokenIds), prompts)
        for (i, r) in results.enumerated() {
            let alone = LLM(engine: try makeToyEngine())
            XCTAssertEqual(try alone.generate(promptTokenIds: [prompts[i]], sampling: p)[0].tokenIds, r.tokenIds)
            XCTAssertEqual(r.finishReason, .length)
            XCTAssertEqual(r.logprobs?.count, 9)
            XCTAssertEqual(r.logprobs?.first?.top.count, 2)
        }
        XCTAssertGreaterThan(llm.engine.stats.numPreemptions, 0)
        XCTAssertTrue(llm.engine.kvCacheIsWhole)
        XCTAssertThrowsError(try llm.generate(promptTokenIds: [[3], []], sampling: p))
        XCTAssertFalse(llm.engine.hasUnfinishedRequests)
    }
}
