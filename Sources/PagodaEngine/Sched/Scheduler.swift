import Collections

/// Decides, every step, which requests compute how many tokens (vLLM v1's scheduler).
///
/// There are no prefill and decode phases. Each request has `numComputedTokens` and `numTokens`
/// (prompt + generated); a step gives each scheduled request some of the difference, so that the
/// computed count catches up with the known tokens. That one rule covers a whole prompt, a prefill
/// chunk, a decode, a prefix-cache hit and a request resumed after preemption. A step has a token
/// budget (`maxNumBatchedTokens`) and a request limit (`maxNumSeqs`); running requests are served
/// first in arrival order, then waiting ones. When the KV cache runs out, the newest running
/// request is preempted: its blocks are freed and it goes back to the front of the waiting queue to
/// be recomputed (its freed blocks usually come back from the prefix cache).
///
/// Batches in flight (pipeline parallelism, vLLM's batch queue): the engine core may schedule a new
/// batch before the outputs of earlier ones are back. A request is in at most one batch in flight:
/// `schedule()` skips a request whose previous step has not come back through
/// `updateFromOutput(_:_:)`, and `maxNumRequests` lets the engine split the running requests into
/// micro-batches so that P stages have P batches to work on.
public final class Scheduler {
    public let config: SchedulerConfig
    public let maxModelLen: Int
    public let kvCacheManager: KVCacheManager
    /// Every unfinished request by id.
    private var requests: [String: Request] = [:]
    var waiting = Deque<Request>()
    /// Oldest first; the last one is preempted first.
    private(set) var running: [Request] = []
    /// Finished since the last `schedule()`: the workers are told in the next SchedulerOutput.
    private var finishedReqIds: [String] = []
    private var numPreemptions = 0
    /// Requests with a step in flight (scheduled, output not yet applied), by id: the object that was
    /// scheduled, so that an output never reaches a newer request that reuses an aborted one's id.
    private var inFlight: [String: Request] = [:]
    /// Batches the engine keeps in flight (vLLM's `max_concurrent_batches`, = pipeline stages). At 1 the
    /// scheduler does not track steps in flight: each `schedule()` assumes the previous step is done
    /// (its tokens counted as computed), as with one batch at a time.
    public var maxConcurrentBatches = 1
    /// The KV connector (`--kv-transfer-config`), if any; see `Scheduler+KVConnector.swift`.
    public internal(set) var connector: KVConnectorScheduler?
    /// Requests whose prompt KV is loading (status `.waitingForRemoteKVs`), by id.
    var waitingForRemoteKVs: [String: Request] = [:]
    /// Finished requests whose blocks wait for a remote reader (a producer's delayed free), by id.
    var heldForRemote: [String: Request] = [:]
    /// Requests aborted while their KV was loading: their blocks are freed when the load ends.
    var abortedWhileLoading: [String: Request] = [:]
    /// The connector's counters, summed from the workers' reports and the scheduler's own.
    var kvTransferStats = KVTransferStats()

    public init(config: SchedulerConfig, maxModelLen: Int, kvCacheManager: KVCacheManager) {
        self.config = config
        self.maxModelLen = maxModelLen
        self.kvCacheManager = kvCacheManager
    }

    public var numUnfinishedRequests: Int { waiting.count + running.count + waitingForRemoteKVs.count }
    public var hasUnfinishedRequests: Bool { !waiting.isEmpty || !running.isEmpty || !waitingForRemoteKVs.isEmpty }
    public func request(_ id: String) -> Request? { requests[id] }
    /// True when `id` names a request that still holds blocks (unfinished, or held for a remote reader).
    public func holdsRequestId(_ id: String) -> Bool {
        requests[id] != nil || heldForRemote[id] != nil || abortedWhileLoading[id] != nil
    }
    /// Requests finished since the last `schedule()` that the workers have not been told about.
    public var hasFinishedRequestsToReport: Bool { !finishedReqIds.isEmpty }

    /// Queues a validated request (see `EngineCore.addRequest`).
    public func addRequest(_ r: EngineRequest) {
        let req = Request(r)
        requests[r.requestId] = req
        waiting.append(req)
    }

    /// Requests that have a step in flight.
    public var numRequestsInFlight: Int { inFlight.count }

    /// One step's plan. Also advances `numComputedTokens` of every scheduled request by its share.
    /// `maxNumRequests`: at most this many requests in the batch (micro-batches for pipeline stages);
    /// requests with a step in flight are never scheduled again until its output is applied.
    public func schedule(maxNumRequests: Int = Int.max) -> SchedulerOutput {
        var tokenBudget = config.maxNumBatchedTokens
        var numRequests = 0
        var scheduledRunning: [Request] = []
        var scheduledNew: [Request] = []
        var preempted: [Request] = []
        var numScheduled: [String: Int] = [:]
        var newBlockIds: [String: [Int]] = [:]

        // 1. Running requests, oldest first: each gets the tokens it is missing, within the budget.
        var i = 0
        while i < running.count && tokenBudget > 0 && numRequests < maxNumRequests {
            let req = running[i]
            let n = min(req.numTokens - req.numComputedTokens, tokenBudget)
            if n <= 0 || inFlight[req.requestId] != nil { i += 1; continue }
            var allocated: [Int]? = nil
            while allocated == nil {
                if case .allocated(let blocks) = kvCacheManager.allocateSlots(req, numNewTokens: n) {
                    allocated = blocks.blockIds
                    break
                }
                // Out of blocks: preempt the newest running request (possibly `req` itself) and retry.
                let victim = running.removeLast()
                preempt(victim)
                preempted.append(victim)
                if victim === req { break }
            }
            guard let blocks = allocated else { break }
            scheduledRunning.append(req)
            numScheduled[req.requestId] = n
            newBlockIds[req.requestId] = blocks
            tokenBudget -= n
            numRequests += 1
            i += 1
        }

        // 2. Waiting requests in order (preempted ones first), unless this step had to preempt.
        if preempted.isEmpty {
            while let req = waiting.first, tokenBudget > 0, running.count < config.maxNumSeqs, numRequests < maxNumRequests,
                inFlight[req.requestId] == nil
            {
                var computed = KVCacheBlocks.empty
                var numNewComputed = 0
                if req.numComputedTokens == 0 {
                    (computed, numNewComputed) = kvCacheManager.getComputedBlocks(req)
                }
                // A KV connector may supply more: asynchronously (the request then waits for it), or now.
                var numExternal = 0
                if connector != nil && req.numComputedTokens == 0 {
                    let (ext, loadAsync) = matchExternalTokens(req, numLocalComputed: numNewComputed)
                    if loadAsync {
                        guard startRemoteLoad(req, numExternal: ext, numLocalComputed: numNewComputed, localBlocks: computed)
                        else { break }
                        waiting.removeFirst()
                        continue
                    }
                    numExternal = ext
                }
                numNewComputed += numExternal
                var n = req.numTokens - req.numComputedTokens - numNewComputed
                if !config.enableChunkedPrefill && n > tokenBudget { break }
                n = min(n, tokenBudget)
                guard
                    case .allocated = kvCacheManager.allocateSlots(
                        req, numNewTokens: n, numNewComputedTokens: numNewComputed, newComputedBlocks: computed)
                else { break }
                if numExternal > 0 {
                    // The connector sees the request as it stands after the local prefix hit (vLLM's order).
                    let before = req.numComputedTokens
                    req.numComputedTokens += numNewComputed - numExternal
                    connector?.updateStateAfterAlloc(
                        req, blockIds: kvCacheManager.blockIds(of: req.requestId),
                        numExternalTokens: numExternal)
                    req.numComputedTokens = before
                }
                waiting.removeFirst()
                running.append(req)
                req.status = .running
                req.numComputedTokens += numNewComputed
                if req.numCachedTokens < 0 { req.numCachedTokens = numNewComputed }
                scheduledNew.append(req)
                numScheduled[req.requestId] = n
                tokenBudget -= n
                numRequests += 1
            }
        }

        // 3. The message for the workers: new (and resumed) requests in full, the others as a diff.
        var out = SchedulerOutput()
        for req in scheduledNew {
            let resumed = req.numPreemptions > 0
            out.scheduledNewReqs.append(
                NewRequestData(
                    reqId: req.requestId, promptTokenIds: req.promptTokenIds,
                    outputTokenIds: resumed ? req.outputTokenIds : [], sampling: req.sampling, eosTokenIds: req.eosTokenIds,
                    blockIds: kvCacheManager.blockIds(of: req.requestId), numComputedTokens: req.numComputedTokens))
            req.numTokensSentToWorkers = req.numTokens
        }
        for req in scheduledRunning {
            out.scheduledCachedReqs.append(
                reqId: req.requestId, newTokenIds: Array(req.allTokenIds[req.numTokensSentToWorkers...]),
                newBlockIds: newBlockIds[req.requestId] ?? [], numComputedTokens: req.numComputedTokens)
            req.numTokensSentToWorkers = req.numTokens
        }
        out.numScheduledTokens = numScheduled
        out.totalNumScheduledTokens = config.maxNumBatchedTokens - tokenBudget
        out.finishedReqIds = finishedReqIds
        out.preemptedReqIds = preempted.map(\.requestId)
        finishedReqIds.removeAll(keepingCapacity: true)

        // The scheduled tokens count as computed from now on (their K/V are written by this step).
        for req in scheduledNew { req.numComputedTokens += numScheduled[req.requestId]! }
        for req in scheduledRunning { req.numComputedTokens += numScheduled[req.requestId]! }
        if maxConcurrentBatches > 1 {
            for req in scheduledNew { inFlight[req.requestId] = req }
            for req in scheduledRunning { inFlight[req.requestId] = req }
        }
        if let connector {
            let meta = connector.buildConnectorMeta(out, requests: scheduledNew + scheduledRunning)
            if !meta.isEmpty { out.kvConnectorMetadata = meta }
        }
        return out
    }

    /// Frees a running request's blocks and puts it back at the front of the waiting queue.
    private func preempt(_ req: Request) {
        kvCacheManager.free(req)
        req.status = .preempted
        req.numComputedTokens = 0
        req.numPreemptions += 1
        req.numTokensSentToWorkers = 0
        numPreemptions += 1
        waiting.prepend(req)
    }

    /// Applies the sampled tokens of the one step in flight (one batch at a time): see
    /// `updateFromOutput(_:_:)`. Every step in flight counts as done afterwards.
    public func updateFromOutput(_ runnerOutput: ModelRunnerOutput) -> [EngineOutput] {
        if let c = runnerOutput.kvConnectorOutput { updateFromConnectorOutput(c) }
        let outputs = apply(runnerOutput, inFlightOnly: false)
        inFlight.removeAll(keepingCapacity: true)
        return outputs
    }

    /// Applies the sampled tokens of the step `schedulerOutput` (one of several batches in flight):
    /// appends them, checks stop conditions, frees finished requests; its requests may be scheduled
    /// again. Returns one output per request that got a token.
    public func updateFromOutput(_ schedulerOutput: SchedulerOutput, _ runnerOutput: ModelRunnerOutput) -> [EngineOutput] {
        if let c = runnerOutput.kvConnectorOutput { updateFromConnectorOutput(c) }
        let outputs = apply(runnerOutput, inFlightOnly: true)
        for id in schedulerOutput.numScheduledTokens.keys { inFlight[id] = nil }
        return outputs
    }

    private func apply(_ runnerOutput: ModelRunnerOutput, inFlightOnly: Bool) -> [EngineOutput] {
        var outputs: [EngineOutput] = []
        outputs.reserveCapacity(runnerOutput.reqIds.count)
        var anyFinished = false
        for chunk in runnerOutput.promptLogprobs { requests[chunk.reqId]?.record(chunk) }
        for (k, id) in runnerOutput.reqIds.enumerated() {
            guard let req = requests[id], req.status == .running else { continue }  // aborted or preempted meanwhile
            if inFlightOnly && maxConcurrentBatches > 1 && inFlight[id] !== req { continue }  // a newer request with an aborted one's id
            let token = runnerOutput.sampledTokenIds[k]
            req.appendOutputToken(token)
            let status = checkStop(req)
            var out = EngineOutput(requestId: id, newTokenIds: [token])
            if let lp = runnerOutput.logprobs[k] { out.newLogprobs = [lp] }
            if req.numOutputTokensReported == 0 {
                out.numCachedTokens = max(0, req.numCachedTokens)
                out.promptLogprobs = req.takePromptLogprobs()
            }
            req.numOutputTokensReported += 1
            if let status {
                req.status = status
                out.finishReason = status.finishReason
                out.stopReason = req.stopReason
                finishWithConnector(req, output: &out)
                requests[id] = nil
                finishedReqIds.append(id)
                anyFinished = true
            }
            outputs.append(out)
        }
        if anyFinished { running.removeAll { $0.status.isFinished } }
        return outputs
    }

    /// vLLM's `check_stop`: length first, then EOS (unless ignored), then stop token ids; nothing stops
    /// before `minTokens`, except a terminator of a structured-output request: the sampler allows one
    /// there only where the grammar cannot continue, so the grammar wins over `min_tokens`.
    private func checkStop(_ req: Request) -> RequestStatus? {
        let s = req.sampling
        if req.numOutputTokens < s.minTokens {
            guard s.structuredOutputs != nil, req.numOutputTokens > 0 else { return nil }
            let last = req.outputTokenIds[req.numOutputTokens - 1]
            guard (!s.ignoreEOS && req.eosTokenIds.contains(last)) || s.stopTokenIds.contains(last) else { return nil }
        }
        if req.numTokens >= maxModelLen || req.numOutputTokens >= s.maxTokens { return .finishedLengthCapped }
        let last = req.outputTokenIds[req.numOutputTokens - 1]
        if !s.ignoreEOS && req.eosTokenIds.contains(last) { return .finishedStopped }
        if s.stopTokenIds.contains(last) {
            req.stopReason = last
            return .finishedStopped
        }
        return nil
    }

    /// Ends requests from outside (client abort, error); frees their blocks. Unknown ids are ignored.
    public func finishRequests(_ ids: [String], status: RequestStatus = .finishedAborted) {
        precondition(status.isFinished)
        var removeRunning = false
        var removeWaiting = false
        for id in ids {
            guard let req = requests.removeValue(forKey: id) else { continue }
            if req.status == .waitingForRemoteKVs {
                // Its blocks are being written by a load: they are freed when the load ends.
                waitingForRemoteKVs[id] = nil
                abortedWhileLoading[id] = req
                req.status = status
                continue
            }
            if req.status == .running { removeRunning = true } else { removeWaiting = true }
            req.status = status
            _ = connector?.requestFinished(req, blockIds: [])  // an ended request never keeps its blocks
            kvCacheManager.free(req)
            finishedReqIds.append(id)
        }
        if removeRunning { running.removeAll { $0.status.isFinished } }
        if removeWaiting { waiting.removeAll { $0.status.isFinished } }
    }

    /// Ids of all unfinished requests (running first).
    public var unfinishedRequestIds: [String] {
        running.map(\.requestId) + waiting.map(\.requestId) + waitingForRemoteKVs.keys.sorted()
    }

    public func makeStats() -> SchedulerStats {
        var s = SchedulerStats()
        s.numRunning = running.count
        s.numWaiting = waiting.count + waitingForRemoteKVs.count
        s.kvCacheUsage = kvCacheManager.usage
        s.prefixCacheQueries = kvCacheManager.prefixCacheQueries
        s.prefixCacheHits = kvCacheManager.prefixCacheHits
        s.numPreemptions = numPreemptions
        s.kvTransfer = kvTransferStats
        return s
    }
}
