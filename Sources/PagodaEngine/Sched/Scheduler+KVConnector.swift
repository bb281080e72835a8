import Logging

/// The scheduler's side of KV transfer (vLLM's connector hooks in `Scheduler`): external prefix hits,
/// the waiting-for-remote-KV state, delayed frees of a producer's blocks, and recompute when a load fails.
///
/// A request whose KV loads asynchronously gets blocks for its whole prompt and waits (status
/// `.waitingForRemoteKVs`, in no step) until the worker reports the load; then all prompt tokens but the
/// last count as computed and it is scheduled like any waiting request (the last prompt token is
/// computed to get the first token's logits). A failed load frees the blocks and the request prefills
/// here from scratch (counted in `recomputes`). Blocks are freed only when no transfer can touch them.
extension Scheduler {
    static let kvLogger = Logger(label: "pagoda.kv-transfer")

    /// Installs the connector (once, before the first request).
    public func setConnector(_ c: KVConnectorScheduler) { connector = c }

    /// True while blocks are held for remote readers or loads are in flight: the engine keeps stepping so
    /// that the workers' reports come in.
    public var hasKVTransfersInFlight: Bool {
        !heldForRemote.isEmpty || !abortedWhileLoading.isEmpty || !waitingForRemoteKVs.isEmpty
    }

    /// Asks the connector for tokens beyond the local hit; a refusal of remote params is logged and counted.
    func matchExternalTokens(_ req: Request, numLocalComputed: Int) -> (Int, Bool) {
        guard let connector else { return (0, false) }
        let (n, loadAsync) = connector.getNumNewMatchedTokens(req, numComputedTokens: numLocalComputed)
        if let refusal = req.kvLoadRefusal {
            req.kvLoadRefusal = nil
            req.kvLoadFailed = true
            kvTransferStats.recomputes += 1
            Self.kvLogger.warning("request \(req.requestId): not loading its KV (\(refusal)); computing its prefill here")
        }
        if !loadAsync && connector is SharedStorageConnectorScheduler {
            kvTransferStats.externalPrefixCacheQueries += req.numTokens - numLocalComputed
            kvTransferStats.externalPrefixCacheHits += n
        }
        return (n, loadAsync && n > 0)
    }

    /// Allocates the prompt's blocks (not yet registered in the prefix cache) and parks the request until
    /// its KV arrives. False when the blocks do not fit now (the request stays first in line).
    func startRemoteLoad(_ req: Request, numExternal: Int, numLocalComputed: Int, localBlocks: KVCacheBlocks) -> Bool {
        guard
            case .allocated = kvCacheManager.allocateSlots(
                req, numNewTokens: numExternal, numNewComputedTokens: numLocalComputed, newComputedBlocks: localBlocks,
                delayCacheBlocks: true)
        else { return false }
        req.numComputedTokens = numLocalComputed
        req.status = .waitingForRemoteKVs
        waitingForRemoteKVs[req.requestId] = req
        connector?.updateStateAfterAlloc(req, blockIds: kvCacheManager.blockIds(of: req.requestId), numExternalTokens: numExternal)
        return true
    }

    /// Applies the workers' report: frees blocks that were read (or whose hold expired), resumes requests
    /// whose KV arrived, sends those whose load failed back to compute their prefill.
    func updateFromConnectorOutput(_ c: KVConnectorOutput) {
        kvTransferStats.add(c.stats)
        kvTransferStats.blocksHeldForRemote = c.stats.blocksHeldForRemote
        for id in c.finishedSending {
            guard let req = heldForRemote.removeValue(forKey: id) else { continue }
            kvCacheManager.free(req)
            connector?.heldBlocksFreed(id)
        }
        if heldForRemote.isEmpty { kvTransferStats.blocksHeldForRemote = 0 }
        for id in c.finishedRecving {
            if let req = abortedWhileLoading.removeValue(forKey: id) { kvCacheManager.free(req); continue }
            guard let req = waitingForRemoteKVs.removeValue(forKey: id) else { continue }
            req.numComputedTokens = max(req.numComputedTokens, req.numPromptTokens - 1)
            req.numCachedTokens = req.numComputedTokens
            kvCacheManager.cacheBlocks(req, numComputedTokens: req.numComputedTokens)
            req.status = .waiting
            waiting.prepend(req)
        }
        for (id, reason) in c.failedRecving.sorted(by: { $0.key < $1.key }) {
            if let req = abortedWhileLoading.removeValue(forKey: id) { kvCacheManager.free(req); continue }
            guard let req = waitingForRemoteKVs.removeValue(forKey: id) else { continue }
            kvCacheManager.free(req)
            req.numComputedTokens = 0
            req.kvLoadFailed = true
            req.status = .waiting
            waiting.prepend(req)
            kvTransferStats.recomputes += 1
            Self.kvLogger.warning("request \(id): \(reason); computing its prefill here instead")
        }
    }

    /// Frees a request that just finished, unless the connector keeps its blocks for a remote reader; the
    /// connector's `kv_transfer_params` go into its last output.
    func finishWithConnector(_ req: Request, output: inout EngineOutput) {
        if let connector {
            let (delay, params) = connector.requestFinished(req, blockIds: kvCacheManager.blockIds(of: req.requestId))
            output.kvTransferParams = params
            if delay {
                heldForRemote[req.requestId] = req
                return
            }
        }
        kvCacheManager.free(req)
    }
}
