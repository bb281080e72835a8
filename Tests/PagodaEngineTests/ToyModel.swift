import PagodaEngine
import PagodaModel

/// A deterministic stand-in for a transformer that exercises the paged KV cache for real: every
/// token's (id, position) is written to its slot, and the logits of a position are a hash of the
/// whole context *read back through the block table*. A wrong slot, block table, prefix-cache hit or
/// recompute changes the tokens (or throws when a slot holds the wrong position).
final class ToyModel: RunnableModel {
    let vocabSize: Int
    let eosTokenIds: [Int]
    let maxPositionEmbeddings: Int
    private(set) var blockSize = 0
    /// [numBlocks * blockSize] slots: token id and position, -1 when never written.
    private var slotToken: [Int] = []
    private var slotPos: [Int] = []
    private(set) var numForwardCalls = 0
    private(set) var maxTokensInOneStep = 0

    struct CacheError: Error, CustomStringConvertible { var description: String }

    init(vocabSize: Int = 97, eosTokenIds: [Int] = [1], maxPositionEmbeddings: Int = 4096) {
        self.vocabSize = vocabSize; self.eosTokenIds = eosTokenIds; self.maxPositionEmbeddings = maxPositionEmbeddings
    }

    func kvCacheBytesPerBlock(blockSize: Int) -> Int { blockSize * 16 }

    func allocateKVCache(numBlocks: Int, blockSize: Int) throws {
        self.blockSize = blockSize
        slotToken = [Int](repeating: -1, count: numBlocks * blockSize)
        slotPos = [Int](repeating: -1, count: numBlocks * blockSize)
    }

    func forward(_ batch: ForwardBatch, hiddenIn: UnsafePointer<Float>?, hiddenOut: UnsafeMutablePointer<Float>?,
                 logits: UnsafeMutablePointer<Float>?) throws {
        numForwardCalls += 1
        maxTokensInOneStep = max(maxTokensInOneStep, batch.numTokens)
        for i in 0..<batch.numTokens {
            let s = Int(batch.slotMapping[i])
            slotToken[s] = Int(batch.tokenIds[i])
            slotPos[s] = Int(batch.positions[i])
        }
        var row = 0
        for r in 0..<batch.numRequests {
            let end = Int(batch.queryStartLoc[r + 1])
            guard batch.logitsIndices.contains(Int32(end - 1)) else { continue }
            let ctx = Int(batch.contextLens[r])
            guard Int(batch.positions[end - 1]) == ctx - 1 else { throw CacheError(description: "position/context mismatch") }
            var h: UInt64 = 1469598103934665603
            for p in 0..<ctx {
                let s = Int(batch.blockTables[r][p / blockSize]) * blockSize + p % blockSize
                guard slotPos[s] == p else { throw CacheError(description: "slot \(s) holds position \(slotPos[s]), expected \(p)") }
                h = (h ^ UInt64(slotToken[s] + 1)) &* 1099511628211
            }
            let out = logits! + row * vocabSize
            for v in 0..<vocabSize {
                var z = h ^ UInt64(v) &* 0x9E37_79B9_7F4A_7C15
                z = (z ^ (z >> 29)) &* 0xBF58_476D_1CE4_E5B9
                out[v] = Float(z % 4096) / 512  // 0 ..< 8
            }
            row += 1
        }
        precondition(row == batch.logitsIndices.count)
    }
}

/// Engine pieces around a ToyModel.
func makeToyEngine(numBlocks: Int = 64, blockSize: Int = 4, maxNumSeqs: Int = 16, maxNumBatchedTokens: Int = 256,
                   chunked: Bool = true, prefixCaching: Bool = true, maxModelLen: Int = 128,
                   model: ToyModel = ToyModel()) throws -> EngineCore {
    let config = EngineConfig(
        model: ModelLoadConfig(path: "toy", maxModelLen: maxModelLen),
        cache: CacheConfig(blockSize: blockSize, enablePrefixCaching: prefixCaching, numBlocksOverride: numBlocks),
        scheduler: SchedulerConfig(maxNumSeqs: maxNumSeqs, maxNumBatchedTokens: maxNumBatchedTokens, enableChunkedPrefill: chunked),
        seed: 7)
    return try EngineCore(config: config, executor: UniProcExecutor(model: model, config: config))
}

/// Runs the engine until every request finished; returns each request's tokens and finish reason.
@discardableResult
func runToCompletion(_ core: EngineCore, maxSteps: Int = 10_000) throws -> [String: (tokens: [Int], finish: FinishReason?)] {
    var result: [String: (tokens: [Int], finish: FinishReason?)] = [:]
    var steps = 0
    while core.hasUnfinishedRequests {
        for o in try core.step() {
            result[o.requestId, default: ([], nil)].tokens += o.newTokenIds
            if let f = o.finishReason { result[o.requestId]!.finish = f }
        }
        steps += 1
        precondition(steps < maxSteps, "engine did not finish")
    }
    return result
}

func request(_ id: String, _ prompt: [Int], _ sampling: SamplingParams) -> EngineRequest {
    EngineRequest(requestId: id, promptTokenIds: prompt, sampling: sampling, eosTokenIds: [1], arrivalTime: 0)
}

func greedy(maxTokens: Int, ignoreEOS: Bool = true) -> SamplingParams {
    var p = SamplingParams.greedy
    p.maxTokens = maxTokens
    p.ignoreEOS = ignoreEOS
    return p
}

/// Deterministic pseudo-random prompts over the toy vocabulary (ids 2..<97).
func toyPrompt(_ seed: Int, length: Int) -> [Int] {
    var x = UInt64(seed) &* 0x9E37_79B9_7F4A_7C15 &+ 12345
    return (0..<length).map { _ in
        x = x &* 6364136223846793005 &+ 1442695040888963407
        return 2 + Int((x >> 33) % 95)
    }
}
