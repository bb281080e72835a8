import PagodaDistributed

/// Joins the expert-parallel group of one worker (or of an engine that runs its model in-process).
///
/// With `--enable-expert-parallel` the group is every DP × TP worker, EP rank = dpRank × TP + tpRank
/// (`ExpertPlacement.expertRank`). With one DP rank it is the tensor-parallel group itself (the same
/// ranks, used in call order); with several, the server that starts the DP engines names its address
/// (`ParallelConfig.expertParallelGroupAddress`). Errors name EP ranks.
enum ExpertParallelGroup {
    /// `secret`: the deployment's, which every engine of the group proves on a TCP group.
    static func connect(_ p: ParallelConfig, tpRank: Int, tensorGroup: Communicator?, secret: PeerSecret) throws -> Communicator? {
        guard p.enableExpertParallel else { return nil }
        if p.dataParallelSize == 1 { return tensorGroup ?? SingleRankCommunicator() }
        guard let address = p.expertParallelGroupAddress else {
            throw EngineConfigError.invalid(
                "--enable-expert-parallel", "no expert-parallel group address for data-parallel rank \(p.dataParallelRank)")
        }
        let size = p.dataParallelSize * p.tensorParallelSize
        let rank = ExpertPlacement.expertRank(
            dataParallelRank: p.dataParallelRank, tensorRank: tpRank, tensorParallelSize: p.tensorParallelSize)
        return try GroupCommunicator.connect(
            CommunicatorAddress(parsing: address), group: ProcessGroup(name: "expert-parallel", ranks: Array(0..<size)), rank: rank,
            secret: secret, timeout: p.communicatorTimeoutSeconds)
    }
}
