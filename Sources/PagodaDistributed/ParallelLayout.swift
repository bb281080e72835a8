/// Rank layout of one data-parallel engine's workers (DESIGN §4, as in vLLM):
/// world = DP × PP × TP; inside one DP engine, worker rank = ppRank × TP + tpRank.
/// Tensor groups are consecutive ranks; pipeline groups stride by TP.
public struct ParallelLayout: Equatable, Sendable {
    public let tensorParallelSize: Int
    public let pipelineParallelSize: Int
    public let dataParallelSize: Int

    public init(tensorParallelSize: Int = 1, pipelineParallelSize: Int = 1, dataParallelSize: Int = 1) {
        precondition(tensorParallelSize >= 1 && pipelineParallelSize >= 1 && dataParallelSize >= 1)
        self.tensorParallelSize = tensorParallelSize
        self.pipelineParallelSize = pipelineParallelSize
        self.dataParallelSize = dataParallelSize
    }

    /// Workers of one DP engine: TP × PP.
    public var workersPerEngine: Int { tensorParallelSize * pipelineParallelSize }
    /// All workers: DP × PP × TP.
    public var worldSize: Int { workersPerEngine * dataParallelSize }

    public func workerRank(ppRank: Int, tpRank: Int) -> Int { ppRank * tensorParallelSize + tpRank }
    public func tpRank(ofWorker rank: Int) -> Int { rank % tensorParallelSize }
    public func ppRank(ofWorker rank: Int) -> Int { rank / tensorParallelSize }

    /// The tensor-parallel group of stage `ppRank`: consecutive worker ranks.
    public func tensorGroup(ppRank: Int) -> ProcessGroup {
        ProcessGroup(name: "tp\(ppRank)", ranks: (0..<tensorParallelSize).map { workerRank(ppRank: ppRank, tpRank: $0) })
    }
    /// The pipeline group of tensor rank `tpRank`: ranks striding by TP, ordered by stage.
    public func pipelineGroup(tpRank: Int) -> ProcessGroup {
        ProcessGroup(name: "pp\(tpRank)", ranks: (0..<pipelineParallelSize).map { workerRank(ppRank: $0, tpRank: tpRank) })
    }
    /// The driver worker: last pipeline stage, tensor rank 0 (it holds the gathered logits).
    public var driverRank: Int { workerRank(ppRank: pipelineParallelSize - 1, tpRank: 0) }
}

/// A set of worker ranks that run collectives together; a rank's index in `ranks` is its group rank.
public struct ProcessGroup: Equatable, Sendable {
    /// Unique within one engine ("tp0", "pp1"); used to name the group's shm segment or port.
    public let name: String
    /// Global worker ranks, in group-rank order.
    public let ranks: [Int]
    public init(name: String, ranks: [Int]) { self.name = name; self.ranks = ranks }
    public var size: Int { ranks.count }
    /// The group rank of global worker `rank`, nil when not a member.
    public func groupRank(of rank: Int) -> Int? { ranks.firstIndex(of: rank) }
}
