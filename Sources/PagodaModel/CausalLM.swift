import Foundation
import PagodaDistributed
import PagodaKernels

/// A decoder-only language model of the Llama family (llama, mistral, qwen2, qwen3, mixtral, qwen3_moe)
/// loaded from a Hugging Face folder: this rank's shard of this pipeline stage's layers, bf16/f32
/// weights memory-mapped, float32 compute, a block-paged float32 KV cache.
///
/// Forward runs one flattened `ForwardBatch` (see `CausalLM+Forward.swift`).
public final class CausalLM {
    public let config: ModelConfig
    public let parallelism: ModelParallelism
    public let plan: ShardPlan
    /// Global indices of the layers this stage runs.
    public let layerRange: Range<Int>
    public let threadPool: ThreadPool
    /// generation_config.json's eos_token_id, else config.json's.
    public let eosTokenIds: [Int]
    /// Arithmetic of the weight GEMMs: float32 (default; matches Hugging Face's float32 forward within 1e-3) or
    /// bf16 activations (`--dtype bfloat16`). Attention, norms and the KV cache stay float32 either way.
    public var precision: GemmPrecision = .float32

    let store: WeightStore
    let layers: [DecoderLayer]
    /// Vocabulary shard of the embedding (first stage) [vocabRange.count, H]; nil on other stages.
    let embedding: WeightMatrix?
    /// Vocabulary shard of the LM head (last stage) [vocabRange.count, H]; nil on other stages.
    let lmHead: WeightMatrix?
    let finalNorm: [Float]?
    let rope: RotaryEmbedding
    let scratch = ForwardScratch()
    let dims: ModelDims
    /// Expert parallelism (`ModelParallelism.expertGroup`): the group, ownership map, buffers and counters.
    let expertParallel: ExpertParallelRuntime?

    // KV cache: per local layer K and V [numBlocks, blockSize, kvHeadsLocal, headDim].
    var keyCaches: [AlignedBuffer<Float>] = []
    var valueCaches: [AlignedBuffer<Float>] = []
    public private(set) var numBlocks = 0
    public private(set) var blockSize = 0

    public var vocabSize: Int { config.vocabSize }
    /// Layers of this pipeline stage.
    public var numLayers: Int { layers.count }
    public var numKVHeadsLocal: Int { plan.kvHeadsLocal }
    public var headDim: Int { plan.headDim }
    public var hiddenSize: Int { config.hiddenSize }
    /// The model's context limit (`max_position_embeddings`; 2048 when the config has none).
    public var maxPositionEmbeddings: Int { config.resolvedMaxPositionEmbeddings }
    /// True on the first pipeline stage (takes token ids) / last stage (produces logits).
    public var isFirstStage: Bool { parallelism.isFirstStage }
    public var isLastStage: Bool { parallelism.isLastStage }
    /// Bytes of weights this rank reads per forward step (for bandwidth figures): every matrix once.
    public private(set) var weightBytes = 0

    /// Loads the folder. `maxModelLen` is the longest context the engine will run (`--max-model-len`);
    /// nil checks the config against `max_position_embeddings` (`ModelConfig.validate`).
    /// `dequantizeToFloat32` (tests against float32 oracles only; serving computes on the blocks): a GGUF's
    /// block-quantized tensors are dequantized to float32 copies at load, as transformers loads a GGUF.
    public init(
        directory: String, parallelism: ModelParallelism = .single, threadPool: ThreadPool, maxModelLen: Int? = nil,
        quantization: WeightDType? = nil, dequantizeToFloat32: Bool = false
    ) throws {
        // A GGUF file (or a folder holding one): config, tokenizer and weights all come from it.
        let ggufPath = try GGUFFile.modelFile(at: directory)
        let gguf = try ggufPath.map { try GGUFFile(path: $0) }
        let config =
            try gguf.map { try ModelConfig.load(gguf: $0, maxModelLen: maxModelLen) }
            ?? ModelConfig.load(directory: directory, maxModelLen: maxModelLen)
        try parallelism.validate()
        self.config = config
        self.parallelism = parallelism
        self.threadPool = threadPool
        if let g = parallelism.expertGroup {
            guard config.resolvedNumExperts > 0 else {
                throw ModelLoadError.invalidParallelism(
                    reason: "expert parallelism needs a mixture-of-experts model (mixtral, qwen3_moe); this one has no experts")
            }
            do {
                expertParallel = try ExpertParallelRuntime(
                    group: g, numExperts: config.resolvedNumExperts, reportInterval: parallelism.expertLoadReportInterval)
            } catch {
                throw ModelLoadError.invalidParallelism(reason: "\(error)")
            }
        } else {
            expertParallel = nil
        }
        plan = try ShardPlan(
            config: config, tpRank: parallelism.tpRank, tpSize: parallelism.tpSize, expertParallel: expertParallel != nil)
        layerRange = try parallelism.layerRange(numLayers: config.numHiddenLayers)
        eosTokenIds = (gguf == nil ? CausalLM.readEosTokenIds(directory: directory) : nil) ?? config.eosTokenIds
        let headDim = plan.headDim
        let ropeFactors = try gguf.flatMap { try ModelConfig.ggufRopeFrequencyFactors(gguf: $0, headDim: headDim) }
        rope = RotaryEmbedding(
            headDim: headDim, theta: config.resolvedRopeTheta,
            scaling: try config.ropeScalingKind(path: ggufPath ?? (directory as NSString).appendingPathComponent("config.json")),
            frequencyFactors: ropeFactors)

        store = try gguf.map { WeightStore(gguf: $0, config: config) } ?? WeightStore(directory: directory)
        store.quantization = quantization.map { (type: $0, pool: threadPool) }
        store.dequantization = dequantizeToFloat32 ? threadPool : nil
        store.tilePool = BlockTiles.isUseful && !dequantizeToFloat32 ? threadPool : nil
        let h = config.hiddenSize, vocab = config.vocabSize
        let needsEmbedding = parallelism.isFirstStage || (parallelism.isLastStage && config.resolvedTieWordEmbeddings)
        let tiedHead = parallelism.isLastStage && config.resolvedTieWordEmbeddings
        let fullEmbedding =
            needsEmbedding
            ? try store.matrix("model.embed_tokens.weight", shape: [vocab, h], tiles: tiedHead, unpackedTiles: tiedHead) : nil
        embedding = parallelism.isFirstStage ? fullEmbedding!.slicingRows(plan.vocabRange) : nil
        if parallelism.isLastStage {
            if config.resolvedTieWordEmbeddings {
                lmHead = fullEmbedding!.slicingRows(plan.vocabRange)
            } else {
                lmHead = try store.matrix("lm_head.weight", shape: [vocab, h], unpackedTiles: true).slicingRows(plan.vocabRange)
            }
            finalNorm = try store.vector("model.norm.weight", count: h)
        } else {
            (lmHead, finalNorm) = (nil, nil)
        }
        let (plan, store, experts) = (self.plan, self.store, expertParallel?.localExperts)
        layers = try layerRange.map { try DecoderLayer(index: $0, config: config, plan: plan, store: store, experts: experts) }

        dims = ModelDims(
            hidden: h, qSize: plan.headsLocal * plan.headDim, kvSize: plan.kvHeadsLocal * plan.headDim,
            headDim: plan.headDim, intermediate: max(plan.intermediateLocal, plan.expertIntermediateLocal),
            experts: config.resolvedNumExperts, topK: config.resolvedNumExperts > 0 ? config.numExpertsPerTok ?? 1 : 0,
            vocabShard: plan.vocabShardSize, tpSize: parallelism.tpSize, threads: threadPool.threads)
        weightBytes = computeWeightBytes()
    }

    private func computeWeightBytes() -> Int {
        func b(_ w: WeightMatrix) -> Int { w.byteCount }
        var total = lmHead.map(b) ?? 0
        for l in layers {
            total += b(l.qProj) + b(l.kProj) + b(l.vProj) + b(l.oProj)
            switch l.feedForward {
            case .dense(let g, let u, let d): total += b(g) + b(u) + b(d)
            case .experts(let m):
                total += b(m.router)
                for i in m.gate.indices { total += b(m.gate[i]) + b(m.up[i]) + b(m.down[i]) }
            }
        }
        return total
    }

    static func readEosTokenIds(directory: String) -> [Int]? {
        let path = (directory as NSString).appendingPathComponent("generation_config.json")
        guard let data = FileManager.default.contents(atPath: path),
            let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        if let one = json["eos_token_id"] as? Int { return [one] }
        if let many = json["eos_token_id"] as? [Int] { return many }
        return nil
    }

    // MARK: KV cache

    /// Bytes one KV block takes on this rank (K and V, all layers of this stage, float32).
    public func kvCacheBytesPerBlock(blockSize: Int) -> Int {
        2 * layers.count * blockSize * plan.kvHeadsLocal * plan.headDim * MemoryLayout<Float>.stride
    }

    /// Allocates (zeroed) K and V caches [numBlocks, blockSize, kvHeadsLocal, headDim] per layer.
    public func allocateKVCache(numBlocks: Int, blockSize: Int) throws {
        guard numBlocks > 0, blockSize > 0 else {
            throw ModelLoadError.invalidParallelism(reason: "KV cache needs numBlocks > 0 and blockSize > 0")
        }
        let (count, overflow) = numBlocks.multipliedReportingOverflow(by: blockSize * plan.kvHeadsLocal * plan.headDim)
        do {
            if overflow { throw AlignedBufferError.cannotMap(bytes: nil, reason: "\(numBlocks) blocks overflow the address space") }
            // Release the old cache first: a smaller new one may fit only without it.
            keyCaches = []; valueCaches = []
            keyCaches = try layers.map { _ in try AlignedBuffer<Float>(exactCapacity: count) }
            valueCaches = try layers.map { _ in try AlignedBuffer<Float>(exactCapacity: count) }
        } catch {
            keyCaches = []; valueCaches = []
            throw ModelLoadError.kvCacheAllocation(numBlocks: numBlocks, reason: "\(error)")
        }
        self.numBlocks = numBlocks
        self.blockSize = blockSize
    }
}
