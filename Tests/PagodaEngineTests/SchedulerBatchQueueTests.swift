import XCTest
@testable import PagodaEngine

/// The scheduler with several batches in flight (pipeline parallelism): a request is in at most one
/// batch in flight, `maxNumRequests` splits the running requests into micro-batches, and an output
/// reaches only the request object that was scheduled.
final class SchedulerBatchQueueTests: XCTestCase {
    private func make(numBlocks: Int = 64, budget: Int = 64) -> Scheduler {
        let kv = KVCacheManager(numBlocks: numBlocks, blockSize: 4, enableCaching: true)
        let s = Scheduler(config: SchedulerConfig(maxNumSeqs: 8, maxNumBatchedTokens: budget, enableChunkedPrefill: true),
                          maxModelLen: 128, kvCacheManager: kv)
        s.maxConcurrentBatches = 2
        return s
    }

    /// Token 7 for every scheduled request whose tokens reached its end.
    private func output(_ s: Scheduler, _ out: SchedulerOutput) -> ModelRunnerOutput {
        var r = ModelRunnerOutput()
        for id in out.scheduledNewReqs.map(\.reqId) + out.scheduledCachedReqs.reqIds {
            if let req = s.request(id), req.numComputedTokens == req.numTokens {
                r.reqIds.append(id); r.sampledTokenIds.append(7); r.logprobs.append(nil)
            }
        }
        return r
    }

    func testMicroBatchesNeverShareARequest() {
        let s = make()
        for i in 0..<4 { s.addRequest(request("r\(i)", toyPrompt(i, length: 6), greedy(maxTokens: 3))) }
        let a = s.schedule(maxNumRequests: 2)
        let b = s.schedule(maxNumRequests: 2)
        XCTAssertEqual(a.scheduledNewReqs.map(\.reqId), ["r0", "r1"])
        XCTAssertEqual(b.scheduledNewReqs.map(\.reqId), ["r2", "r3"])
        XCTAssertEqual(s.numRequestsInFlight, 4)
        // Everything is in flight: nothing to schedule.
        XCTAssertTrue(s.schedule(maxNumRequests: 2).isEmpty)
        let outA = s.updateFromOutput(a, output(s, a))
        XCTAssertEqual(outA.map(\.requestId), ["r0", "r1"])
        // a's requests decode while b is still in flight.
        let a2 = s.schedule(maxNumRequests: 2)
        XCTAssertEqual(a2.scheduledCachedReqs.reqIds, ["r0", "r1"])
        XCTAssertEqual(a2.scheduledCachedReqs.newTokenIds, [[7], [7]])
        XCTAssertEqual(a2.numScheduledTokens, ["r0": 1, "r1": 1])
        XCTAssertEqual(s.updateFromOutput(b, output(s, b)).map(\.requestId), ["r2", "r3"])
        XCTAssertEqual(s.schedule(maxNumRequests: 2).scheduledCachedReqs.reqIds, ["r2", "r3"])
    }

    func testAPartialPrefillChunkIsNotScheduledTwiceInFlight() {
        let s = make(budget: 8)
        s.addRequest(request("long", toyPrompt(1, length: 20), greedy(maxTokens: 2)))
        let first = s.schedule()
        XCTAssertEqual(first.numScheduledTokens, ["long": 8])
        XCTAssertTrue(s.schedule().isEmpty, "the next chunk waits until the first one is back")
        XCTAssertTrue(s.updateFromOutput(first, output(s, first)).isEmpty)
        XCTAssertEqual(s.schedule().numScheduledTokens, ["long": 8])
    }

    func testAnOutputForAnAbortedRequestNeverReachesANewRequestWithItsId() {
        let s = make()
        s.addRequest(request("x", toyPrompt(1, length: 5), greedy(maxTokens: 4)))
        let a = s.schedule()
        let stale = output(s, a)
        s.finishRequests(["x"], status: .finishedAborted)
        s.addRequest(request("x", toyPrompt(2, length: 5), greedy(maxTokens: 4)))
        XCTAssertTrue(s.schedule().isEmpty, "the new x waits until the old x's step is back")
        XCTAssertTrue(s.updateFromOutput(a, stale).isEmpty, "the old step's token is dropped")
        XCTAssertEqual(s.request("x")?.outputTokenIds, [])
        let b = s.schedule()
        XCTAssertEqual(b.scheduledNewReqs.map(\.reqId), ["x"])
        XCTAssertEqual(s.updateFromOutput(b, output(s, b)).map(\.newTokenIds), [[7]])
    }

    func testAtOneBatchNothingIsTrackedInFlight() {
        let s = make()
        s.maxConcurrentBatches = 1
        s.addRequest(request("a", toyPrompt(1, length: 20), greedy(maxTokens: 2)))
        _ = s.schedule(maxNumRequests: 8)
        XCTAssertEqual(s.numRequestsInFlight, 0)
    }
}

final class WorkerCPUPlacementTests: XCTestCase {
    func testEachWorkerGetsItsOwnCPUs() {
        let all = Array(0..<8)
        XCTAssertEqual(WorkerCPUPlacement.make(localRank: 0, localWorldSize: 2, threads: 4, allowed: all),
                       WorkerCPUPlacement(cpus: [0, 1, 2, 3], pinned: true))
        XCTAssertEqual(WorkerCPUPlacement.make(localRank: 1, localWorldSize: 2, threads: 4, allowed: all),
                       WorkerCPUPlacement(cpus: [4, 5, 6, 7], pinned: true))
        // The allowed set need not start at 0 or be contiguous.
        XCTAssertEqual(WorkerCPUPlacement.make(localRank: 1, localWorldSize: 2, threads: 1, allowed: [2, 5]),
                       WorkerCPUPlacement(cpus: [5], pinned: true))
    }

    func testOversubscribedWorkersWrapAndAreNotPinned() {
        let p = WorkerCPUPlacement.make(localRank: 1, localWorldSize: 2, threads: 2, allowed: [0, 1])
        XCTAssertEqual(p, WorkerCPUPlacement(cpus: [0, 1], pinned: false))
        XCTAssertEqual(WorkerCPUPlacement.make(localRank: 3, localWorldSize: 4, threads: 1, allowed: [0, 1]).cpus, [1])
    }

    func testCPUListFormat() {
        XCTAssertEqual(WorkerCPUPlacement.parseCPUList("0-3,8,10-11\n"), [0, 1, 2, 3, 8, 10, 11])
        XCTAssertEqual(WorkerCPUPlacement.parseCPUList("0"), [0])
        XCTAssertNil(WorkerCPUPlacement.parseCPUList("0-x"))
        XCTAssertFalse(WorkerCPUPlacement.allowedCPUs().isEmpty)
    }
}
