import Foundation
import XCTest

@testable import PagodaEngine

#if canImport(Glibc)
import Glibc
#endif

/// A worker process killed mid-generation ends the engine with an error naming its rank, and no worker
/// process or shared-memory segment is left behind.
final class ParallelWorkerFailureTests: XCTestCase {
    var modelDir: String {
        ParallelConformanceTests.conformanceModels + "/tiny-qwen3"
    }

    func isRunning(_ pid: Int32) -> Bool { kill(pid, 0) == 0 }

    func runAndKill(tp: Int, pp: Int, victim: Int) throws {
        if MultiprocWorker.loadStage == nil { throw XCTSkip("no CausalLM in this build: worker processes cannot load models") }
        let config = EngineConfig(
            model: ModelLoadConfig(path: modelDir, maxModelLen: 256, threads: 1),
            cache: CacheConfig(blockSize: 16, numBlocksOverride: 64),
            scheduler: SchedulerConfig(maxNumSeqs: 4, maxNumBatchedTokens: 64),
            parallel: ParallelConfig(tensorParallelSize: tp, pipelineParallelSize: pp, distributedExecutorBackend: .mp))
        let executor = try MultiprocExecutor(config: config)
        let core = try EngineCore(config: config, executor: executor)
        let pids = executor.workerPids
        XCTAssertEqual(pids.count, tp * pp)
        var p = SamplingParams.greedy
        p.maxTokens = 200
        p.ignoreEOS = true
        for i in 0..<3 {
            try core.addRequest(EngineRequest(requestId: "r\(i)", promptTokenIds: [1, 2, 3, 4 + i], sampling: p, eosTokenIds: [], arrivalTime: 0))
        }
        for _ in 0..<5 { _ = try core.step() }
        kill(pids[victim], SIGKILL)
        var caught: Error? = nil
        for _ in 0..<1000 {
            do { _ = try core.step() } catch { caught = error; break }
        }
        guard let e = caught as? MultiprocExecutorError else { return XCTFail("expected a MultiprocExecutorError, got \(String(describing: caught))") }
        guard case .workerDied(let rank, _) = e else { return XCTFail("expected workerDied, got \(e)") }
        XCTAssertEqual(rank, victim, "\(e)")
        XCTAssertTrue("\(e)".contains("worker rank \(victim)"), "\(e)")
        // Later steps keep failing with the same error; nothing is left running.
        XCTAssertThrowsError(try executor.executeModel(SchedulerOutput())) { XCTAssertEqual($0 as? MultiprocExecutorError, e) }
        core.shutdown()
        for pid in pids { XCTAssertFalse(isRunning(pid), "worker pid \(pid) still running") }
        let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm"))?.filter { $0.hasPrefix("pagoda-\(getpid())-") } ?? []
        XCTAssertEqual(leftovers, [])
    }

    func testKilledTensorWorkerIsNamed() throws { try runAndKill(tp: 2, pp: 1, victim: 1) }

    func testKilledPipelineWorkerIsNamed() throws { try runAndKill(tp: 2, pp: 2, victim: 2) }
}
