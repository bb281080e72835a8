import PagodaKernels

extension CausalLM {
    /// Layers whose K/V this rank caches (its pipeline stage's).
    public var kvNumLayers: Int { keyCaches.count }
    /// Floats of one block in one layer's K (or V) cache: blockSize × kvHeadsLocal × headDim.
    public var kvBlockFloats: Int { blockSize * plan.kvHeadsLocal * plan.headDim }
    public var kvNumBlocks: Int { numBlocks }

    /// The first float of `block` in layer `layer`'s K or V cache (KV transfer reads and writes whole blocks
    /// here; the caller keeps the block out of every running step meanwhile).
    public func kvBlockPointer(layer: Int, block: Int, value: Bool) -> UnsafeMutablePointer<Float> {
        precondition(layer >= 0 && layer < keyCaches.count && block >= 0 && block < numBlocks, "KV block out of range")
        let base = value ? valueCaches[layer].pointer : keyCaches[layer].pointer
        return base + block * kvBlockFloats
    }
}
