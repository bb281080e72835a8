/// The free KV blocks, in eviction order: a doubly-linked list threaded through two index arrays.
///
/// Hand-written rather than a `Deque` because a free block that is still in the prefix cache can be
/// hit again by a new request and must then leave the queue from the *middle* in O(1)
/// (`remove(_:)`), and because nothing here allocates after `init`.
///
/// Eviction order (least recently used first): `popFront()` takes the block that has been free the
/// longest; freed blocks are appended at the back. `BlockPool.freeBlocks` appends a request's blocks
/// last-block-first, so among one request's blocks the tail of the sequence (the least shareable part
/// of a prefix) is evicted before its head.
///
/// - Complexity: every operation is O(1).
struct FreeKVCacheBlockQueue {
    /// `prev[b]` / `next[b]`: neighbours of block b in the queue; `none` at the ends or when b is not queued.
    private var prev: [Int32]
    private var next: [Int32]
    private var inQueue: [Bool]
    private var head: Int32 = none
    private var tail: Int32 = none
    private(set) var count: Int = 0
    private static let none: Int32 = -1

    /// All `numBlocks` blocks start free, in block-id order.
    init(numBlocks: Int) {
        prev = [Int32](repeating: Self.none, count: numBlocks)
        next = [Int32](repeating: Self.none, count: numBlocks)
        inQueue = [Bool](repeating: false, count: numBlocks)
        for b in 0..<numBlocks { append(b) }
    }

    func contains(_ block: Int) -> Bool { inQueue[block] }

    /// The block that was freed longest ago (the next to be evicted), without removing it.
    var first: Int? { head == Self.none ? nil : Int(head) }

    /// Removes and returns the least recently freed block.
    mutating func popFront() -> Int? {
        guard head != Self.none else { return nil }
        let b = Int(head)
        remove(b)
        return b
    }

    /// Removes `block` from anywhere in the queue.
    mutating func remove(_ block: Int) {
        precondition(inQueue[block], "block \(block) is not in the free queue")
        let p = prev[block], n = next[block]
        if p != Self.none { next[Int(p)] = n } else { head = n }
        if n != Self.none { prev[Int(n)] = p } else { tail = p }
        prev[block] = Self.none; next[block] = Self.none
        inQueue[block] = false
        count -= 1
    }

    /// Puts `block` at the back (most recently freed, evicted last).
    mutating func append(_ block: Int) {
        precondition(!inQueue[block], "block \(block) is already in the free queue")
        let b = Int32(block)
        prev[block] = tail; next[block] = Self.none
        if tail != Self.none { next[Int(tail)] = b } else { head = b }
        tail = b
        inQueue[block] = true
        count += 1
    }

    /// Block ids front to back (tests and debugging).
    var orderedBlocks: [Int] {
        var out: [Int] = []
        var b = head
        while b != Self.none { out.append(Int(b)); b = next[Int(b)] }
        return out
    }
}
