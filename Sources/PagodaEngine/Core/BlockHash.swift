/// Identity of one *full* KV block for prefix caching: hash(parent block's hash, the block's token
/// ids, extra keys). Two blocks with equal `BlockHash` hold the same KV entries, because the hash
/// chains over the whole prefix. Equality also compares the token ids, so a 64-bit collision needs
/// the same tokens after a colliding parent (vLLM keeps token ids in its hash key the same way).
public struct BlockHash: Hashable, Sendable {
    public let value: UInt64
    public let tokenIds: [Int32]

    /// `extraKeys` separate caches that must not share KV for the same tokens (a cache salt, an adapter id).
    public init(parent: BlockHash?, tokenIds: ArraySlice<Int>, extraKeys: [UInt64] = []) {
        value = Self.chainValue(parent: parent?.value, tokenIds: tokenIds, extraKeys: extraKeys)
        self.tokenIds = tokenIds.map { Int32(truncatingIfNeeded: $0) }
    }

    /// `value` of the block after a parent of value `parent` (nil: the first block), without building the
    /// whole key — what the data-parallel front-end computes for every prompt to match the engines' caches.
    public static func chainValue(parent: UInt64?, tokenIds: ArraySlice<Int>, extraKeys: [UInt64] = []) -> UInt64 {
        var h: UInt64 = parent ?? 0x9E37_79B9_7F4A_7C15
        for t in tokenIds { h = mix(h ^ UInt64(bitPattern: Int64(t))) }
        for k in extraKeys { h = mix(h ^ k ^ 0xD6E8_FEB8_6659_FD93) }
        return h
    }

    public static func == (a: BlockHash, b: BlockHash) -> Bool { a.value == b.value && a.tokenIds == b.tokenIds }
    public func hash(into hasher: inout Hasher) { hasher.combine(value) }

    /// A SplitMix64-style finalizer: every input bit affects every output bit.
    @inline(__always) static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
