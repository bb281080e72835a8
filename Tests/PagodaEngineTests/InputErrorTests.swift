import Foundation
import PagodaModel
import XCTest

@testable import PagodaEngine

#if canImport(Glibc)
import Glibc
#endif

/// Former crash sites: a flag, a call or a peer's message that once stopped the process now gives a typed,
/// one-line error, and the engine (or the calling process) keeps working.
final class InputErrorTests: XCTestCase {
    /// A step whose cached-request diff names a request the runner was never sent.
    private func ghostStep() -> SchedulerOutput {
        var c = CachedRequestData()
        c.append(reqId: "ghost", newTokenIds: [5], newBlockIds: [], numComputedTokens: 3)
        return SchedulerOutput(scheduledCachedReqs: c, numScheduledTokens: ["ghost": 1], totalNumScheduledTokens: 1)
    }

    func testUnknownDiffIsATypedErrorAndTheRunnerGoesOn() throws {
        let core = try makeToyEngine()
        guard let uni = core.executor as? UniProcExecutor else { return XCTFail("expected the uniprocess executor") }
        XCTAssertThrowsError(try uni.executeModel(ghostStep())) { error in
            XCTAssertEqual(error as? ModelRunnerError, .unknownRequest("ghost"))
            XCTAssertEqual("\(error)", "the scheduler sent a diff for request ghost, which this worker does not know")
        }
        // A step whose token count is missing, and one that reaches past the request's blocks.
        let new = NewRequestData(reqId: "a", promptTokenIds: [3, 4, 5], outputTokenIds: [], sampling: greedy(maxTokens: 2),
                                 eosTokenIds: [], blockIds: [0], numComputedTokens: 0)
        XCTAssertThrowsError(try uni.executeModel(SchedulerOutput(scheduledNewReqs: [new], totalNumScheduledTokens: 3))) {
            XCTAssertTrue("\($0)".contains("scheduled without a token count"), "\($0)")
        }
        let tooFar = NewRequestData(reqId: "b", promptTokenIds: Array(repeating: 3, count: 9), outputTokenIds: [],
                                    sampling: greedy(maxTokens: 2), eosTokenIds: [], blockIds: [0], numComputedTokens: 0)
        XCTAssertThrowsError(try uni.executeModel(SchedulerOutput(scheduledNewReqs: [tooFar], numScheduledTokens: ["b": 9],
                                                                  totalNumScheduledTokens: 9))) {
            XCTAssertTrue("\($0)".contains("exceed its 9 tokens or 1 blocks"), "\($0)")
        }
        // The same engine still serves real requests.
        try core.addRequest(request("ok", toyPrompt(1, length: 5), greedy(maxTokens: 4)))
        XCTAssertEqual(try runToCompletion(core)["ok"]?.tokens.count, 4)
    }

    /// In a worker process the same message is reported to the engine (naming the worker and the request)
    /// instead of killing the worker silently; the engine's process lives on and the workers are reaped.
    func testUnknownDiffInAWorkerProcessIsReported() throws {
        let dir = ParallelConformanceTests.conformanceModels + "/tiny-qwen3"
        let config = EngineConfig(
            model: ModelLoadConfig(path: dir, maxModelLen: 64, threads: 1),
            cache: CacheConfig(blockSize: 16, numBlocksOverride: 8),
            scheduler: SchedulerConfig(maxNumSeqs: 4, maxNumBatchedTokens: 64),
            parallel: ParallelConfig(tensorParallelSize: 2, distributedExecutorBackend: .mp, communicatorTimeoutSeconds: 20))
        let executor = try MultiprocExecutor(config: config)
        defer { executor.shutdown() }
        try executor.initializeCache(numBlocks: 8)
        XCTAssertThrowsError(try executor.executeModel(ghostStep())) { error in
            guard case .workerFailed(_, let message)? = error as? MultiprocExecutorError else {
                return XCTFail("expected workerFailed, got \(error)")
            }
            XCTAssertTrue(message.contains("request ghost, which this worker does not know"), message)
        }
        executor.shutdown()
        for pid in executor.workerPids { XCTAssertNotEqual(kill(pid, 0), 0, "worker \(pid) still running") }
    }

    func testLLMGenerateWithMismatchedSamplingCountsThrows() throws {
        let llm = LLM(engine: try makeToyEngine())
        let prompts = [toyPrompt(1, length: 4), toyPrompt(2, length: 6)]
        XCTAssertThrowsError(try llm.generate(promptTokenIds: prompts, sampling: [greedy(maxTokens: 3)])) { error in
            XCTAssertEqual(error as? EngineError,
                           .invalidRequest(parameter: "sampling", reason: "1 sampling parameters for 2 prompts (give one, or one per prompt)"))
        }
        XCTAssertFalse(llm.engine.hasUnfinishedRequests, "nothing may be queued after the error")
        let results = try llm.generate(promptTokenIds: prompts, sampling: greedy(maxTokens: 3))
        XCTAssertEqual(results.map(\.tokenIds.count), [3, 3])
        // max_tokens far beyond the context (it once overflowed a buffer size): the request ends at the context.
        var huge = greedy(maxTokens: Int.max)
        huge.minTokens = Int.max
        let long = try llm.generate(promptTokenIds: [prompts[0]], sampling: huge)
        XCTAssertEqual(long[0].tokenIds.count, llm.engine.maxModelLen - prompts[0].count)
        XCTAssertEqual(long[0].finishReason, .length)
    }

    /// `--kv-cache-memory-bytes 999999999999999`: the cache cannot be mapped; a typed error, not a crash.
    func testKVCacheLargerThanMemoryIsATypedError() throws {
        let dir = ParallelConformanceTests.conformanceModels + "/tiny-qwen3"
        let config = EngineConfig(model: ModelLoadConfig(path: dir, maxModelLen: 64, threads: 1),
                                  cache: CacheConfig(kvCacheMemoryBytes: 999_999_999_999_999))
        XCTAssertThrowsError(try EngineCore(config: config)) { error in
            guard case .kvCacheAllocation? = error as? ModelLoadError else { return XCTFail("expected kvCacheAllocation, got \(error)") }
            XCTAssertTrue("\(error)".contains("does not fit in memory"), "\(error)")
            XCTAssertFalse("\(error)".contains("\n"))
        }
        // A model that failed once can be given a cache that fits.
        let lm = try XCTUnwrap(try UniProcExecutor.loadCausalLM(config.model) as? CausalLM)
        XCTAssertThrowsError(try lm.allocateKVCache(numBlocks: Int.max / 2, blockSize: 16))
        try lm.allocateKVCache(numBlocks: 4, blockSize: 16)
    }
}
