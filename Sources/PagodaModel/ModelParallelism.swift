import Foundation
import PagodaDistributed

/// Where this process sits in a tensor × pipeline parallel layout, and the groups it talks through.
///
/// Megatron-style tensor parallelism over `tpGroup` (heads and intermediate size split; row-parallel
/// outputs all-reduced) and contiguous pipeline stages of layers. The pipeline split is even by default
/// (vLLM's `get_pp_indices`: the extra layers go to the stages before the last), or `layerPartition`
/// (the engine's `ParallelConfig.pipelineLayerPartition`, parsed at the command line).
public struct ModelParallelism {
    public var tpRank: Int
    public var tpSize: Int
    public var ppRank: Int
    public var ppSize: Int
    /// The tensor-parallel group (size `tpSize`); nil only when tpSize == 1.
    public var tpGroup: Communicator?
    /// Layers per pipeline stage, summing to the model's layer count; nil = even split.
    public var layerPartition: [Int]?
    /// The expert-parallel group (all DP × TP workers, rank dpRank × TP + tpRank); nil: experts are sharded
    /// by TP inside each expert instead. With it, each rank loads only its experts (`ExpertPlacement`) and
    /// MoE layers dispatch and combine tokens by all-to-all.
    public var expertGroup: Communicator?
    /// Expert-parallel steps between two expert-load reports (an all-gather of the per-expert counters).
    public var expertLoadReportInterval: Int

    public init(
        tpRank: Int = 0, tpSize: Int = 1, ppRank: Int = 0, ppSize: Int = 1, tpGroup: Communicator? = nil,
        layerPartition: [Int]? = nil, expertGroup: Communicator? = nil, expertLoadReportInterval: Int = 100
    ) {
        self.tpRank = tpRank
        self.tpSize = tpSize
        self.ppRank = ppRank
        self.ppSize = ppSize
        self.tpGroup = tpGroup
        self.layerPartition = layerPartition
        self.expertGroup = expertGroup
        self.expertLoadReportInterval = expertLoadReportInterval
    }

    public static var single: ModelParallelism { ModelParallelism() }

    public var isFirstStage: Bool { ppRank == 0 }
    public var isLastStage: Bool { ppRank == ppSize - 1 }

    /// Checks ranks and sizes (not the model-dependent parts).
    public func validate() throws {
        guard tpSize >= 1, ppSize >= 1, (0..<tpSize).contains(tpRank), (0..<ppSize).contains(ppRank) else {
            throw ModelLoadError.invalidParallelism(reason: "ranks tp \(tpRank)/\(tpSize), pp \(ppRank)/\(ppSize) are out of range")
        }
        if tpSize > 1 {
            guard let g = tpGroup else {
                throw ModelLoadError.invalidParallelism(reason: "tensor_parallel_size \(tpSize) needs a tensor-parallel communicator")
            }
            guard g.worldSize == tpSize, g.rank == tpRank else {
                throw ModelLoadError.invalidParallelism(
                    reason: "tensor-parallel group has rank \(g.rank) of \(g.worldSize), expected \(tpRank) of \(tpSize)")
            }
        }
        if expertGroup != nil && ppSize > 1 {
            throw ModelLoadError.invalidParallelism(reason: "expert parallelism runs with pipeline_parallel_size 1")
        }
        if expertLoadReportInterval < 1 {
            throw ModelLoadError.invalidParallelism(reason: "the expert-load report interval must be at least 1 step")
        }
    }

    /// The layers [start, end) this pipeline stage runs, of `numLayers`.
    public func layerRange(numLayers: Int) throws -> Range<Int> {
        let sizes: [Int]
        if let p = layerPartition {
            guard p.count == ppSize, p.reduce(0, +) == numLayers else {
                throw ModelLoadError.invalidParallelism(
                    reason:
                        "the pipeline layer partition \(p.map(String.init).joined(separator: ",")) must have \(ppSize) entries summing to \(numLayers) layers"
                )
            }
            sizes = p
        } else {
            guard numLayers >= ppSize else {
                throw ModelLoadError.invalidParallelism(reason: "pipeline_parallel_size \(ppSize) exceeds the \(numLayers) layers")
            }
            var s = [Int](repeating: numLayers / ppSize, count: ppSize)
            let remaining = numLayers % ppSize
            if remaining > 0 {
                for i in 2..<(remaining + 2) { s[ppSize - i] += 1 }
            }
            sizes = s
        }
        let start = sizes[..<ppRank].reduce(0, +)
        return start..<(start + sizes[ppRank])
    }
}
