/// Merges the KV connector reports of an engine's tensor-parallel workers into one (vLLM's
/// `KVOutputAggregator`): each rank moves its own heads of a request's blocks, so a request has finished
/// sending, or its KV has arrived, only when every rank said so, possibly in different steps. A load that
/// failed on any rank fails (once all ranks are done with the blocks). Counters of requests come from
/// the aggregate (transfers) or from rank 0 (reads served, hold time-outs, the held-blocks gauge); bytes
/// are summed over the ranks, seconds are the slowest rank's.
final class KVOutputAggregator {
    let worldSize: Int
    private var sendCounts: [String: Int] = [:]
    private var recvCounts: [String: Int] = [:]
    private var recvFailures: [String: String] = [:]

    init(worldSize: Int) { self.worldSize = worldSize }

    /// One step's reports, by rank (nil: a rank sent none).
    func aggregate(_ outputs: [KVConnectorOutput?]) -> KVConnectorOutput {
        var out = KVConnectorOutput()
        for (rank, o) in outputs.enumerated() {
            guard let o else { continue }
            for id in o.finishedSending where bump(&sendCounts, id) { out.finishedSending.append(id) }
            for id in o.finishedRecving where bump(&recvCounts, id) { finishRecv(id, into: &out) }
            for (id, reason) in o.failedRecving.sorted(by: { $0.key < $1.key }) {
                if recvFailures[id] == nil { recvFailures[id] = reason }
                if bump(&recvCounts, id) { finishRecv(id, into: &out) }
            }
            out.stats.bytes += o.stats.bytes
            out.stats.sentBytes += o.stats.sentBytes
            out.stats.seconds = max(out.stats.seconds, o.stats.seconds)
            out.stats.savedBlocks += rank == 0 ? o.stats.savedBlocks : 0
            if rank == 0 {
                out.stats.sends += o.stats.sends
                out.stats.sendTimeouts += o.stats.sendTimeouts
                out.stats.blocksHeldForRemote = o.stats.blocksHeldForRemote
                out.stats.recomputes += o.stats.recomputes
            }
        }
        return out
    }

    /// Counts one rank's report of `id`; true when it was the last rank's.
    private func bump(_ counts: inout [String: Int], _ id: String) -> Bool {
        let n = (counts[id] ?? 0) + 1
        if n >= worldSize { counts[id] = nil; return true }
        counts[id] = n
        return false
    }

    private func finishRecv(_ id: String, into out: inout KVConnectorOutput) {
        if let reason = recvFailures.removeValue(forKey: id) {
            out.failedRecving[id] = reason
        } else {
            out.finishedRecving.append(id)
            out.stats.transfers += 1
        }
    }
}
