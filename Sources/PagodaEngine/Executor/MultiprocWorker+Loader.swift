import CPagodaSystem
import PagodaKernels
import PagodaModel

/// The worker's model loader: this stage's shard of a `CausalLM` (PagodaModel), with the tensor group
/// for its all-reduces and the configured layer partition for uneven stages. Threads: `--threads`, else
/// this host's CPUs shared evenly among the engine's workers; each worker's threads go to its own CPUs
/// (`WorkerCPUPlacement`, local rank = worker rank: the engine's workers share one host).
extension MultiprocWorker.StageLoader {
    public static let causalLM = MultiprocWorker.StageLoader { spec in
        let world = spec.tpSize * spec.ppSize
        let allowed = spec.engineCPUs ?? WorkerCPUPlacement.allowedCPUs()
        let threads = spec.model.threads ?? max(1, allowed.count / world)
        let placement = WorkerCPUPlacement.make(
            localRank: spec.ppRank * spec.tpSize + spec.tpRank, localWorldSize: world, threads: threads, allowed: allowed)
        // The calling thread runs the forward pass and the collectives' spin-waits: pin it too.
        if placement.pinned { _ = pagoda_pin_thread_to_cpu(Int32(placement.cpus[0])) }
        let parallelism = ModelParallelism(
            tpRank: spec.tpRank, tpSize: spec.tpSize, ppRank: spec.ppRank, ppSize: spec.ppSize,
            tpGroup: spec.tpSize > 1 ? spec.tensorGroup : nil,
            layerPartition: spec.layerPartition, expertGroup: spec.expertGroup,
            expertLoadReportInterval: spec.expertLoadReportInterval)
        let pool = ThreadPool(threads: threads, cpus: placement.cpus, pin: placement.pinned)
        let lm = try CausalLM(
            directory: spec.model.path, parallelism: parallelism, threadPool: pool, maxModelLen: spec.model.maxModelLen,
            quantization: spec.model.quantization?.weightDType)
        lm.precision = spec.model.dtype.gemmPrecision
        return MultiprocWorker.LoadedStage(model: lm, hiddenSize: lm.hiddenSize)
    }
}
