/// What an expert-parallel rank reports: cumulative counters, and the expert loads of the whole group as of
/// the latest report (an all-gather every `expertLoadReportInterval` steps), from which the engine logs an
/// EPLB-style imbalance line and the server exports per-expert load.
public struct ExpertParallelStats: Sendable, Codable, Equatable {
    /// This rank in the expert-parallel group (DP × TP) and the group's size.
    public var expertRank: Int
    public var groupSize: Int
    /// Experts of the model, and the first/last (exclusive) expert each EP rank holds.
    public var numExperts: Int
    public var rankExpertStarts: [Int]
    /// Expert-parallel steps this rank ran (real forwards and idle steps alike).
    public var steps: Int
    /// Seconds this rank spent in the dispatch and combine all-to-alls (counts exchange included), cumulative.
    /// A collective also waits for the slowest rank to arrive, so this includes the ranks' skew.
    public var allToAllSeconds: Double
    /// Of `allToAllSeconds`, the counts exchange: the first collective of each layer, where a rank mostly waits
    /// for the others to finish their attention (skew, not transfer).
    public var countsExchangeSeconds: Double
    /// Tokens routed to each expert of the model, summed over layers and over the group, cumulative, as of
    /// the latest report (`reportStep`).
    public var tokensPerExpert: [Int]
    /// The step of the latest report (0: none yet).
    public var reportStep: Int
    /// Tokens routed to each EP rank's experts since the previous report, summed over layers.
    public var windowTokensPerRank: [Int]

    public init(expertRank: Int, groupSize: Int, numExperts: Int, rankExpertStarts: [Int]) {
        self.expertRank = expertRank
        self.groupSize = groupSize
        self.numExperts = numExperts
        self.rankExpertStarts = rankExpertStarts
        steps = 0
        allToAllSeconds = 0
        countsExchangeSeconds = 0
        tokensPerExpert = Array(repeating: 0, count: numExperts)
        reportStep = 0
        windowTokensPerRank = Array(repeating: 0, count: groupSize)
    }

    /// vLLM EPLB's balancedness of the latest window: mean over max of the per-rank loads (1 = perfectly even).
    public var balancedness: Double {
        let maxLoad = windowTokensPerRank.max() ?? 0
        guard maxLoad > 0 else { return 1 }
        return Double(windowTokensPerRank.reduce(0, +)) / Double(windowTokensPerRank.count) / Double(maxLoad)
    }

    /// The EP rank holding expert `e`.
    public func owner(ofExpert e: Int) -> Int { (rankExpertStarts.lastIndex(where: { $0 <= e }) ?? 0) }
}
