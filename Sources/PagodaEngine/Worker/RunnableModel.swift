import PagodaModel

/// The model as the model runner drives it: `CausalLM` from PagodaModel conforms (see
/// `CausalLM+RunnableModel.swift`); tests also plug in small deterministic models.
public protocol RunnableModel: AnyObject {
    /// Rows of the logits (the embedding's vocabulary, may exceed the tokenizer's).
    var vocabSize: Int { get }
    var eosTokenIds: [Int] { get }
    /// The model's context limit (`max_position_embeddings`).
    var maxPositionEmbeddings: Int { get }
    /// Bytes one KV block takes over all layers (K and V) of this process.
    func kvCacheBytesPerBlock(blockSize: Int) -> Int
    func allocateKVCache(numBlocks: Int, blockSize: Int) throws
    /// Writes logits [batch.logitsIndices.count, vocabSize] (last stage) after writing this step's K/V.
    func forward(
        _ batch: ForwardBatch, hiddenIn: UnsafePointer<Float>?, hiddenOut: UnsafeMutablePointer<Float>?,
        logits: UnsafeMutablePointer<Float>?) throws
    /// Expert parallelism: an idle data-parallel rank's dummy step (every MoE layer's all-to-all, no tokens).
    func expertParallelIdleStep() throws
    /// Expert parallelism: the counters and load report, only on the step that made a new report.
    var expertParallelReport: ExpertParallelStats? { get }
}

extension RunnableModel {
    public func expertParallelIdleStep() throws {}
    public var expertParallelReport: ExpertParallelStats? { nil }
}
