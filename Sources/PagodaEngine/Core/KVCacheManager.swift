/// The KV blocks handed to one request by one call (vLLM's `KVCacheBlocks`): block ids in sequence order.
public struct KVCacheBlocks: Sendable, Equatable {
    public var blockIds: [Int]
    public init(_ blockIds: [Int] = []) { self.blockIds = blockIds }
    public static let empty = KVCacheBlocks()
}

/// What `allocateSlots` did.
public enum AllocationResult: Sendable, Equatable {
    /// The request now has room for the new tokens; `newBlocks` were appended to its block table.
    case allocated(newBlocks: KVCacheBlocks)
    /// Not enough free blocks: nothing changed (the scheduler may preempt and retry).
    case noFreeBlocks
}

/// Maps requests to KV blocks: finds cached prefixes, allocates slots for new tokens, frees finished
/// requests, and registers full blocks in the prefix cache. The scheduler sees only this type; the
/// `BlockPool` behind it stays hidden.
public final class KVCacheManager {
    public let blockSize: Int
    public let enableCaching: Bool
    let blockPool: BlockPool
    /// Block table of each request that holds blocks, in sequence order.
    private var reqToBlocks: [String: [Int]] = [:]
    /// Leading blocks of each request already registered in the prefix cache.
    private var numCachedBlocks: [String: Int] = [:]
    /// Prefix-cache statistics, in tokens: looked up and found.
    public private(set) var prefixCacheQueries = 0
    public private(set) var prefixCacheHits = 0

    public init(numBlocks: Int, blockSize: Int, enableCaching: Bool) {
        self.blockSize = blockSize
        self.enableCaching = enableCaching
        blockPool = BlockPool(numBlocks: numBlocks, enableCaching: enableCaching)
    }

    public var numBlocks: Int { blockPool.numBlocks }
    public var numFreeBlocks: Int { blockPool.numFreeBlocks }
    public var usage: Double { blockPool.usage }

    /// The request's block table.
    public func blockIds(of requestId: String) -> [Int] { reqToBlocks[requestId] ?? [] }

    /// The longest cached prefix of a request that holds no blocks yet: full blocks only, and never
    /// the whole prompt (the last token must be computed to get logits).
    /// - Returns: the cached blocks and how many tokens they cover.
    public func getComputedBlocks(_ request: Request) -> (blocks: KVCacheBlocks, numComputedTokens: Int) {
        guard enableCaching, request.sampling.promptLogprobs == nil else { return (.empty, 0) }
        updateBlockHashes(request)
        let maxBlocks = (request.numTokens - 1) / blockSize
        var hit: [Int] = []
        for i in 0..<min(maxBlocks, request.blockHashes.count) {
            guard let b = blockPool.getCachedBlock(request.blockHashes[i]) else { break }
            hit.append(b)
        }
        prefixCacheQueries += request.numTokens
        prefixCacheHits += hit.count * blockSize
        return (KVCacheBlocks(hit), hit.count * blockSize)
    }

    /// Makes room in the request's block table for `numNewTokens` more tokens after
    /// `request.numComputedTokens + numNewComputedTokens`, first taking the prefix-cache blocks
    /// `newComputedBlocks` (from `getComputedBlocks`, cover `numNewComputedTokens` tokens).
    /// Registers the blocks that become full in the prefix cache.
    public func allocateSlots(_ request: Request, numNewTokens: Int, numNewComputedTokens: Int = 0,
                              newComputedBlocks: KVCacheBlocks = .empty, delayCacheBlocks: Bool = false) -> AllocationResult {
        precondition(numNewTokens > 0 || numNewComputedTokens > 0)
        let id = request.requestId
        let current = reqToBlocks[id]?.count ?? 0
        let numComputed = request.numComputedTokens + numNewComputedTokens
        let numRequired = (numComputed + numNewTokens + blockSize - 1) / blockSize
        let numNew = max(0, numRequired - current - newComputedBlocks.blockIds.count)
        // Cached blocks that are free now leave the free queue when touched: they cannot also be new blocks.
        var numEvictableComputed = 0
        for b in newComputedBlocks.blockIds where blockPool.refCount(of: b) == 0 { numEvictableComputed += 1 }
        if numNew > blockPool.numFreeBlocks - numEvictableComputed { return .noFreeBlocks }

        if !newComputedBlocks.blockIds.isEmpty { blockPool.touch(newComputedBlocks.blockIds) }
        let newBlocks = numNew > 0 ? blockPool.getNewBlocks(numNew) : []
        reqToBlocks[id, default: []].append(contentsOf: newComputedBlocks.blockIds)
        reqToBlocks[id]!.append(contentsOf: newBlocks)

        // Blocks whose tokens are all known after this step; their K/V are written this step. Blocks that a
        // KV connector fills later (`delayCacheBlocks`) are registered by `cacheBlocks` once their KV is there.
        if !delayCacheBlocks { cacheBlocks(request, numComputedTokens: numComputed + numNewTokens) }
        return .allocated(newBlocks: KVCacheBlocks(newBlocks))
    }

    /// Registers in the prefix cache the request's full blocks among its first `numComputedTokens` tokens.
    public func cacheBlocks(_ request: Request, numComputedTokens: Int) {
        guard enableCaching, let blocks = reqToBlocks[request.requestId] else { return }
        let id = request.requestId
        let numFull = min(numComputedTokens, request.numTokens) / blockSize
        updateBlockHashes(request)
        let already = numCachedBlocks[id] ?? 0
        let upTo = min(numFull, request.blockHashes.count, blocks.count)
        if upTo > already {
            blockPool.cacheFullBlocks(blocks, hashes: request.blockHashes, from: already, to: upTo)
            numCachedBlocks[id] = upTo
        }
    }

    /// Releases all blocks of the request, last block first (so its tail is evicted before its head).
    public func free(_ request: Request) {
        let id = request.requestId
        if let blocks = reqToBlocks.removeValue(forKey: id) { blockPool.freeBlocks(blocks.reversed()) }
        numCachedBlocks[id] = nil
    }

    /// Drops every cached prefix (only when no request holds blocks).
    @discardableResult public func resetPrefixCache() -> Bool { blockPool.resetPrefixCache() }

    /// Extends `request.blockHashes` over every full block of its known tokens.
    func updateBlockHashes(_ request: Request) { request.updateBlockHashes(blockSize: blockSize) }

    /// True when every block is free (tests: "the block pool is whole again").
    public var isWhole: Bool { blockPool.numFreeBlocks == blockPool.numBlocks && reqToBlocks.isEmpty }
}
