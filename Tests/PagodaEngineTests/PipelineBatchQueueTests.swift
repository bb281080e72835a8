import Foundation
import PagodaBench
import XCTest

@testable import PagodaEngine

/// Pipeline parallelism with micro-batches (vLLM's batch queue): with P=2 and several requests, the
/// engine keeps 2 batches in flight (the first stage runs one while the last runs the other), and the
/// greedy tokens equal the single-process engine's and reference.json's.
final class PipelineBatchQueueTests: XCTestCase {
    func config(_ model: String, pp: Int, backend: ParallelConfig.ExecutorBackend) -> EngineConfig {
        EngineConfig(
            model: ModelLoadConfig(path: model, dtype: .float32, maxModelLen: 384, threads: 1),
            cache: CacheConfig(blockSize: 16, numBlocksOverride: 160),
            scheduler: SchedulerConfig(maxNumSeqs: 8, maxNumBatchedTokens: 128, enableChunkedPrefill: true),
            parallel: ParallelConfig(tensorParallelSize: 1, pipelineParallelSize: pp, distributedExecutorBackend: backend),
            seed: 0)
    }

    /// Runs every prompt at once; returns each request's tokens and the engine.
    func generate(_ core: EngineCore, prompts: [[Int]], maxTokens: Int) throws -> [[Int]] {
        var sampling = SamplingParams.greedy
        sampling.maxTokens = maxTokens
        sampling.ignoreEOS = true
        for (i, p) in prompts.enumerated() {
            try core.addRequest(EngineRequest(requestId: "r\(i)", promptTokenIds: p, sampling: sampling, eosTokenIds: [], arrivalTime: 0))
        }
        var tokens = Array(repeating: [Int](), count: prompts.count)
        var steps = 0
        while core.hasUnfinishedRequests && steps < 2000 {
            for o in try core.step() {
                XCTAssertNil(o.error)
                tokens[Int(o.requestId.dropFirst())!] += o.newTokenIds
            }
            steps += 1
        }
        XCTAssertFalse(core.hasUnfinishedRequests, "engine did not finish")
        XCTAssertEqual(core.numBatchesInFlight, 0)
        XCTAssertTrue(core.kvCacheIsWhole)
        return tokens
    }

    func testTwoStagesKeepTwoBatchesInFlightAndMatchOneProcess() throws {
        let dir = ParallelConformanceTests.conformanceModels + "/tiny-llama3"
        let ref = try JSONDecoder().decode(ParallelConformanceTests.Reference.self,
                                           from: Data(contentsOf: URL(fileURLWithPath: dir + "/reference.json")))
        let prompts = ref.prompts.map(\.prompt_ids)
        let maxTokens = ref.prompts[0].steps.count

        let single = try EngineCore(config: config(dir, pp: 1, backend: .uni))
        let expected = try generate(single, prompts: prompts, maxTokens: maxTokens)
        single.shutdown()

        let c = config(dir, pp: 2, backend: .mp)
        let executor = try MultiprocExecutor(config: c)
        let core = try EngineCore(config: c, executor: executor)
        defer { core.shutdown() }
        XCTAssertEqual(core.maxConcurrentBatches, 2)
        try checkPlacement(executor.workerPids, threads: 1)
        let got = try generate(core, prompts: prompts, maxTokens: maxTokens)

        XCTAssertEqual(core.peakBatchesInFlight, 2, "the engine never had 2 batches in flight")
        XCTAssertEqual(executor.peakStepsInFlight, 2)
        // Steady state: every decode step of one micro-batch is submitted while the other is in flight.
        XCTAssertGreaterThan(executor.numOverlappedSubmits, maxTokens, "too few steps overlapped")
        for (i, p) in ref.prompts.enumerated() {
            XCTAssertEqual(got[i], expected[i], "\(p.name): P=2 tokens differ from one process")
            // And the reference (a token may differ only where the reference is a near tie).
            for (k, step) in p.steps.enumerated() where k < got[i].count && got[i][k] != step.token {
                XCTAssertLessThan(step.margin_top1_top2, ParallelConformanceTests.logitTolerance, "\(p.name) step \(k)")
                break
            }
        }

        // A second wave on the same engine: the batch queue is empty and reusable.
        let again = try generate(core, prompts: Array(prompts.prefix(3)), maxTokens: 4)
        for i in 0..<3 { XCTAssertEqual(again[i], Array(expected[i].prefix(4))) }
    }

    /// `pagoda bench latency` at P=2: a step carries the tokens of one micro-batch, not of the whole batch, so the
    /// decode rate must count the tokens that arrive (4 requests × 8 tokens after the first ÷ the decode time);
    /// counting steps × batch would report twice that.
    func testBenchLatencyDecodeRateCountsMicroBatchTokens() throws {
        let c = config(ParallelConformanceTests.conformanceModels + "/tiny-llama3", pp: 2, backend: .mp)
        let core = try EngineCore(config: c, executor: try MultiprocExecutor(config: c))
        defer { core.shutdown() }
        let r = try OfflineLatencyBenchmark(inputLen: 8, outputLen: 9, batchSize: 4, numItersWarmup: 0, numIters: 1,
                                            greedy: true).run(core)
        XCTAssertEqual(core.peakBatchesInFlight, 2)
        let decodeSeconds = r.avgLatency - r.avgPrefillLatency
        let expected = Double(4 * 8) / decodeSeconds
        XCTAssertEqual(r.decodeTokensPerSecond, expected, accuracy: expected * 0.01)
        XCTAssertEqual(r.avgPerTokenLatency, 4 / expected, accuracy: 0.01 * 4 / expected)
    }

    /// Each worker's forward-pass thread (`pagoda-stage`) runs on its own CPU (`WorkerCPUPlacement`), or
    /// anywhere when the workers oversubscribe this host.
    func checkPlacement(_ pids: [Int32], threads: Int) throws {
        let allowed = WorkerCPUPlacement.allowedCPUs()
        for (rank, pid) in pids.enumerated() {
            var stage: [Int]? = nil
            for tid in try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") {
                let comm = (try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/comm", encoding: .utf8)) ?? ""
                guard comm.hasPrefix("pagoda-stage") else { continue }
                let status = try String(contentsOfFile: "/proc/\(pid)/task/\(tid)/status", encoding: .utf8)
                let line = status.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") }
                stage = WorkerCPUPlacement.parseCPUList(String(line?.dropFirst("Cpus_allowed_list:".count) ?? ""))
            }
            let p = WorkerCPUPlacement.make(localRank: rank, localWorldSize: pids.count, threads: threads, allowed: allowed)
            XCTAssertEqual(stage, p.pinned ? [p.cpus[0]] : allowed, "rank \(rank)'s pagoda-stage thread affinity")
        }
    }

    /// One request alone cannot overlap (each token needs the previous one): one batch in flight.
    func testASingleRequestHasOneBatchInFlight() throws {
        let dir = ParallelConformanceTests.conformanceModels + "/tiny-qwen3"
        let c = config(dir, pp: 2, backend: .mp)
        let core = try EngineCore(config: c)
        defer { core.shutdown() }
        let got = try generate(core, prompts: [[1, 2, 3, 4]], maxTokens: 6)
        XCTAssertEqual(got[0].count, 6)
        XCTAssertEqual(core.peakBatchesInFlight, 1)
    }
}
