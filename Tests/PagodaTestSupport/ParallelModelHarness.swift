import Foundation
import PagodaDistributed
import PagodaKernels
import PagodaModel

/// Runs one model split over tp × pp in-process ranks (threads), each rank a `CausalLM` holding only
/// its shard, with `ThreadCommunicator` groups; `forward` returns the driver's logits. With tp = pp = 1
/// it is the plain model. For tests: it spawns a thread per rank per call.
public final class ParallelModelHarness {
    public let tpSize: Int
    public let ppSize: Int
    /// models[ppRank][tpRank]
    public let models: [[CausalLM]]
    public var vocabSize: Int { models[0][0].vocabSize }
    public var hiddenSize: Int { models[0][0].hiddenSize }

    public init(directory: String, tp: Int = 1, pp: Int = 1, layerPartition: [Int]? = nil, threadsPerRank: Int = 1) throws {
        tpSize = tp
        ppSize = pp
        var models: [[CausalLM]] = []
        for s in 0..<pp {
            let group = ThreadCommunicatorGroup(worldSize: tp)
            var stage: [CausalLM] = []
            for r in 0..<tp {
                let par = ModelParallelism(
                    tpRank: r, tpSize: tp, ppRank: s, ppSize: pp, tpGroup: tp > 1 ? group.communicator(rank: r) : nil,
                    layerPartition: layerPartition)
                stage.append(try CausalLM(directory: directory, parallelism: par, threadPool: ThreadPool(threads: threadsPerRank)))
            }
            models.append(stage)
        }
        self.models = models
    }

    public func allocateKVCache(numBlocks: Int, blockSize: Int) throws {
        for stage in models { for m in stage { try m.allocateKVCache(numBlocks: numBlocks, blockSize: blockSize) } }
    }

    /// Logits [batch.logitsIndices.count × vocabSize] from the last stage's TP rank 0.
    public func forward(_ batch: ForwardBatch) throws -> [Float] {
        let n = batch.numTokens
        let h = hiddenSize
        // Stage outputs per TP rank ([2, N, H] hidden + residual); TP rank 0's feeds the next stage.
        let stageOut = (0..<tpSize).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: max(1, 2 * n * h)) }
        let stageIn = UnsafeMutablePointer<Float>.allocate(capacity: max(1, 2 * n * h))
        let logits = UnsafeMutablePointer<Float>.allocate(capacity: max(1, batch.logitsIndices.count * vocabSize))
        defer {
            stageOut.forEach { $0.deallocate() }
            stageIn.deallocate()
            logits.deallocate()
        }
        for s in 0..<ppSize {
            let last = s == ppSize - 1
            let errors = ErrorBox()
            let done = DispatchGroup()
            for r in 0..<tpSize {
                let model = models[s][r]
                let out = stageOut[r]
                done.enter()
                let t = Thread {
                    do {
                        try model.forward(
                            batch, hiddenIn: s == 0 ? nil : UnsafePointer(stageIn), hiddenOut: last ? nil : out,
                            logits: last && r == 0 ? logits : nil)
                    } catch { errors.set(error) }
                    done.leave()
                }
                t.start()
            }
            done.wait()
            if let e = errors.error { throw e }
            if !last { stageIn.update(from: stageOut[0], count: 2 * n * h) }
        }
        return Array(UnsafeBufferPointer(start: logits, count: batch.logitsIndices.count * vocabSize))
    }
}

final class ErrorBox: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var error: Error?
    func set(_ e: Error) {
        lock.lock()
        if error == nil { error = e }
        lock.unlock()
    }
}
