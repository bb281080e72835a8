import PagodaModel

/// One engine's expert-parallel counters, published with its scheduler statistics (`/metrics`): the DP
/// wave protocol's (waves, steps, dummy steps) and the model's latest expert-load report.
public struct ExpertParallelEngineStats: Sendable, Codable, Equatable {
    /// DP waves this engine finished, and whether one is running now.
    public var waves = 0
    public var inWave = false
    /// The number of the wave this engine is in (`inWave`) or starts next; the front-end tracks the waves by it.
    public var currentWave = 0
    /// Wave announcements ignored because their wave had already ended on this engine.
    public var staleWaveAnnouncements = 0
    /// Steps this engine ran inside waves, and those without tokens of its own (dummy batches).
    public var waveSteps = 0
    public var dummySteps = 0
    /// The EP ranks of this engine's workers (dpRank × TP ..< (dpRank + 1) × TP).
    public var expertRanks: [Int] = []
    /// The driver's latest report: all-to-all time, steps, per-expert load of the whole group.
    public var model: ExpertParallelStats? = nil
    public init() {}
}
