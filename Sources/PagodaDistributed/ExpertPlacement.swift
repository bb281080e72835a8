/// Which rank of an expert-parallel group holds which experts of every MoE layer (vLLM's linear
/// placement): the EP group is all DP × TP workers, EP rank = dpRank × TP + tpRank, and rank r holds a
/// contiguous run of experts, the first `numExperts mod size` ranks one more than the others.
public struct ExpertPlacement: Equatable, Sendable {
    public let numExperts: Int
    /// Ranks of the expert-parallel group (DP × TP).
    public let groupSize: Int

    public init(numExperts: Int, groupSize: Int) throws {
        guard groupSize >= 1 else { throw CommunicatorError.invalidArgument("expert-parallel group of \(groupSize) ranks") }
        guard numExperts >= groupSize else {
            throw CommunicatorError.invalidArgument(
                "\(numExperts) experts cannot be spread over an expert-parallel group of \(groupSize) ranks (DP × TP); every rank needs at least one"
            )
        }
        self.numExperts = numExperts
        self.groupSize = groupSize
    }

    /// The EP rank of (data-parallel rank, tensor rank) in a DP × TP layout.
    public static func expertRank(dataParallelRank: Int, tensorRank: Int, tensorParallelSize: Int) -> Int {
        dataParallelRank * tensorParallelSize + tensorRank
    }

    /// The experts EP rank `r` holds (global ids, contiguous).
    public func experts(ofRank r: Int) -> Range<Int> {
        let base = numExperts / groupSize, extra = numExperts % groupSize
        let start = r * base + min(r, extra)
        return start..<(start + base + (r < extra ? 1 : 0))
    }

    /// The EP rank holding expert `e`.
    public func owner(ofExpert e: Int) -> Int {
        let base = numExperts / groupSize, extra = numExperts % groupSize
        let big = extra * (base + 1)  // experts held by the ranks with one more
        return e < big ? e / (base + 1) : extra + (e - big) / base
    }
}
