import Foundation

/// The token masks of stack tops, computed once per grammar and context and reused by every state
/// that contains them (xgrammar's split of context-independent and context-dependent tokens).
///
/// A matcher leaf is a whole stack; its *context* is the positions of its top `depth` frames. A walk
/// of the vocabulary trie from the context alone, with the frames below it cut off
/// (`CompiledGrammar.popped`), sorts every token into: accepted (its bytes end inside the known
/// frames, or exactly where they complete), rejected (no path), or *dependent* (it runs past the
/// known frames, so only the rest of the stack can decide). A state's mask is then the union of its
/// leaves' accepted bits plus the dependent tokens that pass a check against the leaf's full stack:
/// work proportional to the dependent set, not to the vocabulary. Inside a JSON string the known
/// frames (character, repetition, string) end with the closing quote, so one context serves every
/// string of a schema and its dependent tokens are those that go on past a quote (1,145 of the
/// Qwen2 vocabulary's 151,665).
final class ContextMaskTable {
    /// Frames of a leaf's stack that a context keeps.
    static let depth = 3

    let grammar: CompiledGrammar
    let vocabulary: TokenVocabulary
    let words: Int
    private var slots: LRUSlots<[Int32]>
    /// Per slot: the accepted tokens' bits (`words` each, flat) and the dependent token ids.
    private var accepted: [UInt64] = []
    private(set) var dependent: [[Int32]] = []
    private var tmp: [Int32] = []
    /// Bits over `vocabulary.sortedTokens` indices: tokens below a point where the known frames completed.
    private var pending: [UInt64]
    private var key: [Int32] = []
    /// Statistics: contexts computed (one trie walk each) and their total time in seconds.
    private(set) var computed = 0
    private(set) var seconds = 0.0

    init(grammar: CompiledGrammar, vocabulary: TokenVocabulary, capacity: Int) {
        self.grammar = grammar
        self.vocabulary = vocabulary
        words = (vocabulary.count + 63) / 64
        slots = LRUSlots(capacity: capacity)
        pending = [UInt64](repeating: 0, count: (vocabulary.sortedTokens.count + 63) / 64)
        tmp.reserveCapacity(64)
        key.reserveCapacity(Self.depth + 1)
    }

    /// The slot of `leaf`'s context (computed on first use). Must not run in scratch mode.
    func slot(for leaf: Int32) -> Int {
        let g = grammar
        key.removeAll(keepingCapacity: true)
        var n = leaf
        while key.count < Self.depth && n >= 0 {
            key.append(g.nodePos[Int(n)])
            n = g.nodeParent[Int(n)]
        }
        key.append(n >= 0 ? CompiledGrammar.popped : CompiledGrammar.bottom)
        if let s = slots.lookup(key) { return s }
        let (s, isNew) = slots.insert(key)
        if isNew {
            accepted.append(contentsOf: repeatElement(0, count: words))
            dependent.append([])
        }
        compute(slot: s)
        return s
    }

    /// ORs slot `s`'s accepted bits into `bits`.
    func formUnion(slot s: Int, into bits: UnsafeMutablePointer<UInt64>) {
        accepted.withUnsafeBufferPointer { a in
            let src = a.baseAddress! + s * words
            for w in 0..<words { bits[w] |= src[w] }
        }
    }

    /// One pruned walk of the trie from the context in `key`.
    private func compute(slot s: Int) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        defer { seconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 }
        let g = grammar
        let v = vocabulary
        g.beginScratch()
        defer { g.endScratch() }
        // The cut stack: the known frames over `popped` (or over the bottom when the stack is that short).
        var parent = key[key.count - 1]
        for k in stride(from: key.count - 2, through: 1, by: -1) { parent = g.node(key[k], parent) }
        let leaf = g.node(key[0], parent)
        for w in pending.indices { pending[w] = 0 }
        stateIndex.removeAll(keepingCapacity: true)
        stateLeaves.removeAll(keepingCapacity: true)
        statePopped.removeAll(keepingCapacity: true)
        stateNext.removeAll(keepingCapacity: true)
        transitions.removeAll(keepingCapacity: true)
        let start = internState([leaf])
        accepted.withUnsafeMutableBufferPointer { a in
            let bits = a.baseAddress! + s * words
            for w in 0..<words { bits[w] = 0 }
            walk(node: 0, state: start, bits: bits)
            // Dependent: below a completion point and not accepted on the way.
            var dep: [Int32] = []
            for w in pending.indices where pending[w] != 0 {
                var z = pending[w]
                while z != 0 {
                    let t = Int(v.sortedTokens[w * 64 + z.trailingZeroBitCount])
                    if bits[t >> 6] & (UInt64(1) << UInt64(t & 63)) == 0 { dep.append(Int32(t)) }
                    z &= z - 1
                }
            }
            dependent[s] = dep
        }
        computed += 1
    }

    // The walk's states: sets of (scratch-interned) leaves, numbered, with their transitions by byte
    // filled in as the walk meets them. Inside a string every character leads back to the same state, so
    // most trie nodes cost one table read instead of expanding the stacks again.
    private var stateIndex: [[Int32]: Int32] = [:]
    private var stateLeaves: [[Int32]] = []
    private var statePopped: [Bool] = []
    private var stateNext: [ByteSet] = []
    /// 256 per state: the next state, -1 for none, -2 not computed yet.
    private var transitions: [Int32] = []

    /// The number of the state with leaves `set` (sorted, unique), numbering it if new.
    private func internState(_ set: [Int32]) -> Int32 {
        if let s = stateIndex[set] { return s }
        let s = Int32(stateLeaves.count)
        stateIndex[set] = s
        let leaves = set.filter { $0 >= 0 }
        var next = ByteSet()
        for l in leaves { next.formUnion(grammar.sets[Int(grammar.nodePos[Int(l)])]) }
        stateLeaves.append(leaves)
        statePopped.append(set.contains(CompiledGrammar.popped))
        stateNext.append(next)
        transitions.append(contentsOf: repeatElement(-2, count: 256))
        return s
    }

    /// The state after `byte` from state `s` (-1: none).
    @inline(__always) private func step(_ s: Int32, _ byte: UInt8) -> Int32 {
        let k = Int(s) * 256 + Int(byte)
        let known = transitions[k]
        if known != -2 { return known }
        let g = grammar
        tmp.removeAll(keepingCapacity: true)
        for l in stateLeaves[Int(s)] {
            let pos = g.nodePos[Int(l)]
            if g.sets[Int(pos)].contains(byte) { g.expand(pos + 1, g.nodeParent[Int(l)], into: &tmp) }
        }
        var r: Int32 = -1
        if !tmp.isEmpty {
            tmp.sort()
            r = internState(tmp)
        }
        transitions[k] = r
        return r
    }

    /// Depth first over the trie below `node` in walk state `state`: sets the bits of the tokens
    /// accepted and marks in `pending` those below a point where the known frames complete.
    private func walk(node: Int32, state: Int32, bits: UnsafeMutablePointer<UInt64>) {
        let v = vocabulary
        let next = stateNext[Int(state)]
        if next.isEmpty { return }
        var c = v.firstChild[Int(node)]
        while c >= 0 {
            let ci = Int(c)
            if next.contains(v.byte[ci]) {
                let ns = step(state, v.byte[ci])
                if ns >= 0 {
                    for k in Int(v.tokStart[ci])..<Int(v.tokEnd[ci]) {
                        let t = Int(v.sortedTokens[k])
                        bits[t >> 6] |= UInt64(1) << UInt64(t & 63)
                    }
                    if statePopped[Int(ns)] { markPending(Int(v.tokEnd[ci]), Int(v.subtreeEnd[ci])) }
                    walk(node: c, state: ns, bits: bits)
                }
            }
            c = v.nextSibling[ci]
        }
    }

    /// Sets the `pending` bits lo..<hi (sorted-token indices), a word at a time.
    private func markPending(_ lo: Int, _ hi: Int) {
        var i = lo
        while i < hi {
            let w = i >> 6, off = i & 63
            let n = min(64 - off, hi - i)
            let m = n == 64 ? UInt64.max : ((UInt64(1) << UInt64(n)) - 1) << UInt64(off)
            pending[w] |= m
            i += n
        }
    }
}
