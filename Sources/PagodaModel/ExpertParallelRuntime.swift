import Foundation
import PagodaDistributed
import PagodaKernels

/// The expert-parallel side of one `CausalLM`: the EP group, the ownership map, the all-to-all buffers
/// (grown to the largest step seen, so a step allocates nothing once warm) and the load counters.
final class ExpertParallelRuntime {
    let group: Communicator
    let placement: ExpertPlacement
    let reportInterval: Int
    /// Rows travelling in the dispatch: the expert id (as a float, exact below 2^24), then the hidden row.
    let sendRows = AlignedBuffer<Float>(), recvRows = AlignedBuffer<Float>()
    /// Expert outputs in received order, and the combined rows back home in sent order [pairs, H].
    let results = AlignedBuffer<Float>(), combined = AlignedBuffer<Float>()
    /// Per routed pair (token × slot) of this rank's share: its row in `sendRows` / `combined`.
    let pairRow = AlignedBuffer<Int>()
    /// Per received row: its index, bucketed by local expert.
    let bucket = AlignedBuffer<Int>()
    let sendCounts: UnsafeMutablePointer<Int>, recvCounts: UnsafeMutablePointer<Int>, cursor: UnsafeMutablePointer<Int>
    let localCounts: UnsafeMutablePointer<Int>
    /// Tokens routed to each local expert, summed over layers: cumulative, and since the last report.
    private(set) var localTokens: [Int]
    private var windowTokens: [Int]
    private(set) var stats: ExpertParallelStats
    /// Set on the step that produced a new report (the runner attaches `stats` to that step's output).
    var reportedThisStep = false

    init(group: Communicator, numExperts: Int, reportInterval: Int) throws {
        self.group = group
        let placement = try ExpertPlacement(numExperts: numExperts, groupSize: group.worldSize)
        self.placement = placement
        self.reportInterval = reportInterval
        let n = group.worldSize
        sendCounts = .allocate(capacity: n)
        recvCounts = .allocate(capacity: n)
        cursor = .allocate(capacity: n)
        let local = placement.experts(ofRank: group.rank).count
        localCounts = .allocate(capacity: max(local, 1))
        localTokens = Array(repeating: 0, count: local)
        windowTokens = Array(repeating: 0, count: local)
        stats = ExpertParallelStats(
            expertRank: group.rank, groupSize: n, numExperts: numExperts,
            rankExpertStarts: (0..<n).map { placement.experts(ofRank: $0).lowerBound })
    }

    deinit {
        sendCounts.deallocate(); recvCounts.deallocate(); cursor.deallocate(); localCounts.deallocate()
    }

    var localExperts: Range<Int> { placement.experts(ofRank: group.rank) }

    func countRouted(localExpert j: Int, tokens: Int) {
        localTokens[j] += tokens
        windowTokens[j] += tokens
    }

    func addAllToAllTime(_ seconds: Double, countsExchange: Double) {
        stats.allToAllSeconds += seconds
        stats.countsExchangeSeconds += countsExchange
    }

    /// Ends one expert-parallel step (every layer exchanged); every `reportInterval` steps all ranks
    /// all-gather their per-expert counters (collective: every rank is at the same step).
    func endStep() throws {
        stats.steps += 1
        reportedThisStep = false
        guard stats.steps % reportInterval == 0 else { return }
        let n = group.worldSize, e = placement.numExperts
        // Each rank: [E cumulative per expert (zeros for others'), window total].
        let row = e + 1
        var mine = [Float](repeating: 0, count: row)
        var all = [Float](repeating: 0, count: row * n)
        let first = localExperts.lowerBound
        for (j, t) in localTokens.enumerated() { mine[first + j] = Float(t) }
        mine[e] = Float(windowTokens.reduce(0, +))
        try mine.withUnsafeBufferPointer { m in
            try all.withUnsafeMutableBufferPointer { try group.allGather(m.baseAddress!, count: row, into: $0.baseAddress!) }
        }
        for x in 0..<e { stats.tokensPerExpert[x] = Int(all[placement.owner(ofExpert: x) * row + x]) }
        for r in 0..<n { stats.windowTokensPerRank[r] = Int(all[r * row + e]) }
        for j in windowTokens.indices { windowTokens[j] = 0 }
        stats.reportStep = stats.steps
        reportedThisStep = true
    }
}
