import PagodaKernels

extension CausalLM {
    /// Layers whose K/V this rank caches (its pipeline stage's).
    public var kvNumLayers: Int { keyCaches.count }
    /// Floats of one block in one layer's K (or V) cache: blockSize × kvHeadsLocal × headDim.
    public var kvBlockFloats: Int { blockSize * plan.kvHeadsLocal * plan.headDim }
    public var kvNumBlocks: Int { numBlocks }
    /// Tokens per block, KV heads this rank caches, the first one's global index, and floats per head.
    public var kvBlockSize: Int { blockSize }
    public var kvHeadsLocal: Int { plan.kvHeadsLocal }
    public var kvHeadStart: Int { plan.kvHeadStart }
    public var kvHeadDim: Int { plan.headDim }

    /// The global KV heads tensor-parallel rank `tpRank` of `tpSize` caches for this model (nil when the
    /// model cannot be split that way): what a KV reader asks each rank of a producer for.
    public func kvHeadRange(tpRank: Int, tpSize: Int) -> Range<Int>? {
        guard tpSize >= 1, tpRank >= 0, tpRank < tpSize,
            let p = try? ShardPlan(config: config, tpRank: tpRank, tpSize: tpSize)
        else { return nil }
        return p.kvHeadStart..<(p.kvHeadStart + p.kvHeadsLocal)
    }

    /// The first float of `block` in layer `layer`'s K or V cache (KV transfer reads and writes whole blocks
    /// here; the caller keeps the block out of every running step meanwhile).
    public func kvBlockPointer(layer: Int, block: Int, value: Bool) -> UnsafeMutablePointer<Float> {
        precondition(layer >= 0 && layer < keyCaches.count && block >= 0 && block < numBlocks, "KV block out of range")
        let base = value ? valueCaches[layer].pointer : keyCaches[layer].pointer
        return base + block * kvBlockFloats
    }
}
