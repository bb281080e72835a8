/// Remembers which backend each recently routed prompt prefix went to, for cache-aware routing.
///
/// After SGLang's router (an approximate radix tree per worker, built from request history), but
/// with hashed prefix blocks instead of a tree: a prompt is cut into blocks of `blockSize` units
/// (UTF-8 bytes, or token ids when known) and block i is keyed by hash(key of block i-1, block i),
/// so a key stands for the whole prefix up to and including its block — the same chaining vLLM's
/// prefix cache uses for KV blocks. A lookup walks the blocks until the first miss.
///
/// Bounded: two generations of at most `capacity / 2` keys each; when the current one fills it
/// becomes the previous one and the oldest generation is dropped (an O(1) approximation of LRU;
/// a hit in the previous generation is copied to the current one).
public struct PrefixIndex: Sendable {
    public let blockSize: Int
    public let capacity: Int
    private var current: [UInt64: Int] = [:]
    private var previous: [UInt64: Int] = [:]

    public init(blockSize: Int = 64, capacity: Int = 1 << 16) {
        precondition(blockSize > 0 && capacity >= 2)
        self.blockSize = blockSize
        self.capacity = capacity
    }

    public var count: Int { current.count + previous.count }

    /// Chained keys of the full blocks of `units` (a trailing partial block is not keyed).
    public func blockKeys<C: Collection>(_ units: C) -> [UInt64] where C.Element: BinaryInteger {
        var keys: [UInt64] = []
        keys.reserveCapacity(units.count / blockSize)
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a offset basis; chaining: block i's hash starts from block i-1's
        var inBlock = 0
        for unit in units {
            hash = (hash ^ UInt64(truncatingIfNeeded: unit)) &* 0x0000_0100_0000_01b3
            inBlock += 1
            if inBlock == blockSize {
                keys.append(hash)
                inBlock = 0
            }
        }
        return keys
    }

    /// Longest recorded prefix of `keys`: the backend its last block was sent to and how many blocks matched.
    public mutating func longestMatch(_ keys: [UInt64]) -> (backend: Int, matchedBlocks: Int)? {
        var best: (backend: Int, matchedBlocks: Int)?
        for (i, key) in keys.enumerated() {
            guard let backend = lookup(key) else { break }
            best = (backend, i + 1)
        }
        return best
    }

    /// Records that the prefixes `keys` were sent to `backend`.
    public mutating func record(_ keys: [UInt64], backend: Int) {
        for key in keys { insert(key, backend) }
    }

    /// Forgets every prefix owned by `backend` (it went down: its cache is gone).
    public mutating func forget(backend: Int) {
        current = current.filter { $0.value != backend }
        previous = previous.filter { $0.value != backend }
    }

    private mutating func lookup(_ key: UInt64) -> Int? {
        if let backend = current[key] { return backend }
        guard let backend = previous[key] else { return nil }
        insert(key, backend)
        return backend
    }

    private mutating func insert(_ key: UInt64, _ backend: Int) {
        if current[key] == nil, current.count >= capacity / 2 {
            previous = current
            current = [:]
            current.reserveCapacity(capacity / 2)
        }
        current[key] = backend
    }
}
