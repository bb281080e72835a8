/// The two sides of a same-host KV copy (`KVSameHostCopy`) as segment lists for `process_vm_readv`: the
/// producer's blocks (source) and the consumer's (target), paired in the order of the source blocks'
/// addresses. The kernel pins the source's pages once per source segment, so visiting the blocks in address
/// order lets adjacent ones merge into one segment whatever order the request lists them in; the target
/// side, in user memory, costs little per segment and takes each token's heads straight into place when
/// the consumer holds more heads than the source gives.
struct KVCopyPlan {
    let source: KVBlockSlices
    let target: KVBlockSlices

    /// Copies heads `heads` of `sourceBlockIds[k]` into `targetBlockIds[k]` for every k.
    init(source: KVBlockStorage, target: KVBlockStorage, sourceBlockIds: [Int], targetBlockIds: [Int], heads: Range<Int>) {
        precondition(sourceBlockIds.count == targetBlockIds.count)
        // Within one layer's K (or V) a block's address grows with its id.
        let order = sourceBlockIds.indices.sorted { sourceBlockIds[$0] < sourceBlockIds[$1] }
        self.source = KVBlockSlices(
            storage: source, blockIds: order.map { sourceBlockIds[$0] }, headStart: heads.lowerBound, headCount: heads.count)
        self.target = KVBlockSlices(
            storage: target, blockIds: order.map { targetBlockIds[$0] }, headStart: heads.lowerBound, headCount: heads.count)
    }
}
