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

    /// Children of `pid` (from /proc/*/stat).
    func children(of pid: Int32) -> [Int32] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return names.compactMap { n -> Int32? in
            guard let child = Int32(n), let stat = try? String(contentsOfFile: "/proc/\(n)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")") else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == pid ? child : nil
        }
    }

    /// An engine process killed with SIGKILL takes its workers with it (PR_SET_PDEATHSIG).
    func testWorkersDieWithTheEngineProcess() throws {
        let exe = try MultiprocExecutor.workerExecutable(nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = ["generate", modelDir, "--prompt", "Hello", "--max-tokens", "3000", "--max-model-len", "4096",
                       "--ignore-eos", "-tp", "2", "--threads", "1", "--kv-cache-memory-bytes", "50000000"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { p.terminate() } }
        var workers: [Int32] = []
        let deadline = Date().addingTimeInterval(60)
        while workers.count < 2 && Date() < deadline && p.isRunning {
            usleep(50_000)
            workers = children(of: p.processIdentifier)
        }
        XCTAssertEqual(workers.count, 2, "the engine did not start two workers")
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let gone = Date().addingTimeInterval(5)
        while workers.contains(where: isRunning) && Date() < gone { usleep(20_000) }
        for w in workers { XCTAssertFalse(isRunning(w), "worker \(w) outlived its engine") }
    }
}
