import PagodaKernels
import PagodaModel

/// The worker's model loader: this stage's shard of a `CausalLM` (PagodaModel), with the tensor group
/// for its all-reduces and `PAGODA_PP_LAYER_PARTITION` for uneven stages. Threads: `--threads`, else
/// this host's CPUs shared evenly among the engine's workers.
extension MultiprocWorker {
    static let defaultLoadStage: ((StageSpec) throws -> LoadedStage)? = { spec in
        let threads = spec.model.threads ?? max(1, ThreadPool.availableCPUs / (spec.tpSize * spec.ppSize))
        let parallelism = ModelParallelism(
            tpRank: spec.tpRank, tpSize: spec.tpSize, ppRank: spec.ppRank, ppSize: spec.ppSize,
            tpGroup: spec.tpSize > 1 ? spec.tensorGroup : nil,
            layerPartition: try ModelParallelism.layerPartitionFromEnvironment())
        let lm = try CausalLM(directory: spec.model.path, parallelism: parallelism, threadPool: ThreadPool(threads: threads))
        lm.precision = spec.model.dtype.gemmPrecision
        return LoadedStage(model: lm, hiddenSize: lm.hiddenSize)
    }
}
