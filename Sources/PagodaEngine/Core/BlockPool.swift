/// Owns every KV block of the cache: reference counts, the free queue and the prefix-cache index.
///
/// A block is either in use (refCount > 0, held by one or more requests) or free (refCount == 0,
/// in `freeQueue`). A free block may still carry a `BlockHash`: its KV stays valid and a later
/// request with the same prefix can take it back (`touch`) until `getNewBlocks` evicts it
/// (least recently freed first). Invariant: `numFreeBlocks + blocks in use == numBlocks`.
public final class BlockPool {
    public let numBlocks: Int
    public let enableCaching: Bool
    private(set) var refCount: [Int32]
    /// The hash of a full block registered in the prefix cache; nil for partial/uncached blocks.
    private(set) var blockHash: [BlockHash?]
    private var freeQueue: FreeKVCacheBlockQueue
    /// Prefix-cache index: hash of a full block -> the block holding it.
    private var cachedBlockHashToBlock: [BlockHash: Int] = [:]
    /// Changes to the prefix-cache index since the last `takeEvents()` (vLLM's KV cache events), when
    /// `recordsEvents`: what a data-parallel front-end needs to route requests to the engine holding their prefix.
    public var recordsEvents = false
    private var events = KVCacheEvents()

    public init(numBlocks: Int, enableCaching: Bool) {
        precondition(numBlocks > 0)
        self.numBlocks = numBlocks
        self.enableCaching = enableCaching
        refCount = [Int32](repeating: 0, count: numBlocks)
        blockHash = [BlockHash?](repeating: nil, count: numBlocks)
        freeQueue = FreeKVCacheBlockQueue(numBlocks: numBlocks)
        cachedBlockHashToBlock.reserveCapacity(numBlocks)
    }

    public var numFreeBlocks: Int { freeQueue.count }
    /// Fraction of blocks in use, 0...1.
    public var usage: Double { 1 - Double(numFreeBlocks) / Double(numBlocks) }
    /// Blocks registered in the prefix cache (in use or free).
    public var numCachedBlocks: Int { cachedBlockHashToBlock.count }

    /// The block that caches `hash`, if any.
    public func getCachedBlock(_ hash: BlockHash) -> Int? { cachedBlockHashToBlock[hash] }

    /// Takes `n` blocks from the front of the free queue, evicting their cached hashes; each gets refCount 1.
    /// Precondition: `n <= numFreeBlocks`.
    public func getNewBlocks(_ n: Int) -> [Int] {
        precondition(n <= numFreeBlocks, "asked for \(n) blocks, \(numFreeBlocks) free")
        var out = [Int]()
        out.reserveCapacity(n)
        for _ in 0..<n {
            let b = freeQueue.popFront()!
            evict(b)
            refCount[b] = 1
            out.append(b)
        }
        return out
    }

    /// Takes a reference on blocks found in the prefix cache; a free one leaves the free queue.
    public func touch(_ blocks: [Int]) {
        for b in blocks {
            if refCount[b] == 0 { freeQueue.remove(b) }
            refCount[b] += 1
        }
    }

    /// Drops one reference from each block, in the given order; a block reaching zero goes to the back of
    /// the free queue (so pass a request's blocks last-first: its tail is then evicted before its head).
    public func freeBlocks<S: Sequence>(_ blocks: S) where S.Element == Int {
        for b in blocks {
            precondition(refCount[b] > 0, "block \(b) freed more often than taken")
            refCount[b] -= 1
            if refCount[b] == 0 { freeQueue.append(b) }
        }
    }

    /// Registers the full blocks `blocks[numCached..<numFull]` under `hashes[i]` (hashes of the same request,
    /// index i = i-th block of the sequence). A hash already cached in another block is left as it is: the
    /// duplicate block simply stays uncached.
    public func cacheFullBlocks(_ blocks: [Int], hashes: [BlockHash], from numCached: Int, to numFull: Int) {
        guard enableCaching, numFull > numCached else { return }
        for i in numCached..<numFull {
            let b = blocks[i]
            if blockHash[b] != nil { continue }  // came from the cache already
            let h = hashes[i]
            if cachedBlockHashToBlock[h] != nil { continue }
            blockHash[b] = h
            cachedBlockHashToBlock[h] = b
            if recordsEvents { events.changes.append(.init(hash: h.value, stored: true)) }
        }
    }

    /// The index changes recorded since the last call, in order; clears them.
    public func takeEvents() -> KVCacheEvents {
        defer { events = KVCacheEvents() }
        return events
    }

    /// Forgets every cached hash of free blocks (used blocks keep theirs). Returns false when blocks are in use.
    @discardableResult
    public func resetPrefixCache() -> Bool {
        guard numFreeBlocks == numBlocks else { return false }
        cachedBlockHashToBlock.removeAll(keepingCapacity: true)
        for b in 0..<numBlocks { blockHash[b] = nil }
        if recordsEvents { events = KVCacheEvents(cleared: true) }
        return true
    }

    private func evict(_ b: Int) {
        if let h = blockHash[b] {
            if cachedBlockHashToBlock[h] == b {
                cachedBlockHashToBlock[h] = nil
                if recordsEvents { events.changes.append(.init(hash: h.value, stored: false)) }
            }
            blockHash[b] = nil
        }
    }

    /// Free block ids in eviction order (tests).
    public var freeBlockOrder: [Int] { freeQueue.orderedBlocks }
    public func refCount(of block: Int) -> Int { Int(refCount[block]) }
}
