import XCTest
@testable import PagodaEngine

final class SchedulerTests: XCTestCase {
    private func make(numBlocks: Int = 32, budget: Int = 16, maxNumSeqs: Int = 8, chunked: Bool = true) -> Scheduler {
        let kv = KVCacheManager(numBlocks: numBlocks, blockSize: 4, enableCaching: true)
        return Scheduler(config: SchedulerConfig(maxNumSeqs: maxNumSeqs, maxNumBatchedTokens: budget, enableChunkedPrefill: chunked),
                         maxModelLen: 128, kvCacheManager: kv)
    }

    /// Every scheduled request that reached its end gets token 5.
    private func sampleAll(_ s: Scheduler, _ out: SchedulerOutput) -> [EngineOutput] {
        var r = ModelRunnerOutput()
        let ids = out.scheduledNewReqs.map(\.reqId) + out.scheduledCachedReqs.reqIds
        for id in ids {
            let req = s.request(id)!
            if req.numComputedTokens == req.numTokens { r.reqIds.append(id); r.sampledTokenIds.append(5); r.logprobs.append(nil) }
        }
        return s.updateFromOutput(r)
    }

    func testTokenBudgetChunksLongPromptsAndServesRunningFirst() {
        let s = make(budget: 16)
        s.addRequest(request("a", toyPrompt(1, length: 30), greedy(maxTokens: 3)))
        s.addRequest(request("b", toyPrompt(2, length: 5), greedy(maxTokens: 3)))

        var out = s.schedule()  // a: first chunk of 16
        XCTAssertEqual(out.numScheduledTokens, ["a": 16])
        XCTAssertEqual(out.scheduledNewReqs.map(\.reqId), ["a"])
        XCTAssertEqual(out.scheduledNewReqs[0].blockIds.count, 4)
        XCTAssertTrue(sampleAll(s, out).isEmpty)  // partial prefill samples nothing

        out = s.schedule()  // a: remaining 14, then b gets the last 2 tokens of the budget
        XCTAssertEqual(out.numScheduledTokens, ["a": 14, "b": 2])
        XCTAssertEqual(out.scheduledCachedReqs.reqIds, ["a"])
        XCTAssertEqual(out.scheduledCachedReqs.numComputedTokens, [16])
        XCTAssertEqual(out.scheduledCachedReqs.newTokenIds, [[]])
        XCTAssertEqual(sampleAll(s, out).map(\.requestId), ["a"])

        out = s.schedule()  // a decodes 1 (its sampled token travels as a diff), b finishes its prompt
        XCTAssertEqual(out.numScheduledTokens, ["a": 1, "b": 3])
        XCTAssertEqual(out.scheduledCachedReqs.reqIds, ["a", "b"])
        XCTAssertEqual(out.scheduledCachedReqs.newTokenIds, [[5], []])
        XCTAssertEqual(out.totalNumScheduledTokens, 4)
    }

    func testWithoutChunkedPrefillAPromptWaitsForAFullBudget() {
        let s = make(budget: 16, chunked: false)
        s.addRequest(request("a", toyPrompt(1, length: 10), greedy(maxTokens: 3)))
        s.addRequest(request("b", toyPrompt(2, length: 10), greedy(maxTokens: 3)))
        let out = s.schedule()
        XCTAssertEqual(out.numScheduledTokens, ["a": 10])
    }

    func testMaxNumSeqsLimitsRunningRequests() {
        let s = make(budget: 64, maxNumSeqs: 2)
        for i in 0..<3 { s.addRequest(request("r\(i)", toyPrompt(i, length: 3), greedy(maxTokens: 2))) }
        let out = s.schedule()
        XCTAssertEqual(Set(out.numScheduledTokens.keys), ["r0", "r1"])
        XCTAssertEqual(s.makeStats().numWaiting, 1)
        XCTAssertEqual(s.makeStats().numRunning, 2)
    }

    func testNewestRunningRequestIsPreemptedWhenBlocksRunOut() {
        // 4 blocks of 4 tokens: two requests of 7 prompt tokens take 2 blocks each; decoding past 8 needs more.
        let s = make(numBlocks: 4, budget: 64)
        s.addRequest(request("old", toyPrompt(1, length: 7), greedy(maxTokens: 6)))
        s.addRequest(request("new", toyPrompt(2, length: 7), greedy(maxTokens: 6)))
        var out = s.schedule()
        XCTAssertEqual(out.numScheduledTokens.count, 2)
        _ = sampleAll(s, out)  // both at 8 tokens, 7 computed
        out = s.schedule()  // both compute token 8, still in 2 blocks
        _ = sampleAll(s, out)  // 9 tokens: need a third block each
        out = s.schedule()
        XCTAssertEqual(out.preemptedReqIds, ["new"])
        XCTAssertEqual(out.numScheduledTokens, ["old": 1])
        XCTAssertEqual(s.request("new")!.status, .preempted)
        XCTAssertEqual(s.request("new")!.numComputedTokens, 0)
        XCTAssertEqual(s.makeStats().numPreemptions, 1)
        // Run to the end: "new" comes back as a new request with its generated tokens, finishes, pool whole.
        _ = sampleAll(s, out)
        var resumed: NewRequestData?
        var finished: Set<String> = []
        for _ in 0..<50 where s.hasUnfinishedRequests {
            out = s.schedule()
            if let r = out.scheduledNewReqs.first(where: { $0.reqId == "new" }) { resumed = r }
            for o in sampleAll(s, out) where o.finishReason != nil { finished.insert(o.requestId) }
        }
        XCTAssertEqual(finished, ["old", "new"])
        XCTAssertEqual(resumed?.outputTokenIds, [5, 5])
        XCTAssertTrue(s.kvCacheManager.isWhole)
    }

    func testStopConditions() {
        let s = make(budget: 64)
        var p = greedy(maxTokens: 10, ignoreEOS: false)
        p.stopTokenIds = [7]
        s.addRequest(EngineRequest(requestId: "eos", promptTokenIds: [3, 4], sampling: p, eosTokenIds: [5], arrivalTime: 0))
        var q = greedy(maxTokens: 10, ignoreEOS: false)
        q.minTokens = 2
        s.addRequest(EngineRequest(requestId: "min", promptTokenIds: [3, 4], sampling: q, eosTokenIds: [5], arrivalTime: 0))
        s.addRequest(request("len", [3, 4], greedy(maxTokens: 1)))
        let out = s.schedule()
        let outputs = Dictionary(uniqueKeysWithValues: sampleAll(s, out).map { ($0.requestId, $0) })
        XCTAssertEqual(outputs["eos"]?.finishReason, .stop)
        XCTAssertNil(outputs["eos"]?.stopReason)
        XCTAssertNil(outputs["min"]?.finishReason)  // below min_tokens
        XCTAssertEqual(outputs["len"]?.finishReason, .length)
        XCTAssertEqual(outputs["len"]?.numCachedTokens, 0)
        s.finishRequests(["min"])
        XCTAssertTrue(s.kvCacheManager.isWhole)
        XCTAssertEqual(s.schedule().finishedReqIds.sorted(), ["eos", "len", "min"])
    }

    func testSchedulerOutputIsCodable() throws {
        let s = make()
        s.addRequest(request("a", toyPrompt(1, length: 9), greedy(maxTokens: 3)))
        let out = s.schedule()
        let data = try JSONEncoder().encode(out)
        XCTAssertEqual(try JSONDecoder().decode(SchedulerOutput.self, from: data), out)
    }
}
