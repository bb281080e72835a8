import Foundation

/// A compiled constraint bound to one vocabulary: the flattened grammar and a cache of token masks
/// keyed by matcher state. A state's mask is computed once (one pruned walk of the vocabulary
/// trie) and then reused by every request with the same constraint, so a decode step normally costs
/// a hash lookup and one pass over the mask's words. Used from one thread at a time.
public final class StructuredGrammar: @unchecked Sendable {
    public let grammar: CompiledGrammar
    public let vocabulary: TokenVocabulary
    /// Wall time of the grammar compilation (parse + flatten), seconds.
    public let compileSeconds: Double
    let words: Int
    /// One bitmask per cached state (bit t set: token t allowed), `words` UInt64s each.
    var masks: [[UInt64]] = []
    var maskIndex: [[Int32]: Int] = [:]
    var maskAnyAllowed: [Bool] = []
    /// Masks beyond this many are dropped all at once (each is vocabulary/8 bytes).
    let maxMasks: Int
    /// Scratch for the trie walk: states stacked by depth.
    private var walkBuf: UnsafeMutablePointer<Int32>
    private var walkCap: Int
    private var tmp: [Int32] = []
    /// Statistics: masks computed (cache misses) and their total time in seconds.
    public private(set) var masksComputed = 0
    public private(set) var maskSeconds: Double = 0

    public init(grammar g: Grammar, vocabulary: TokenVocabulary, compileSeconds: Double = 0, maxMasks: Int = 2048) {
        grammar = CompiledGrammar(g)
        self.vocabulary = vocabulary
        self.compileSeconds = compileSeconds
        words = (vocabulary.count + 63) / 64
        self.maxMasks = maxMasks
        walkCap = 1 << 16
        walkBuf = .allocate(capacity: walkCap)
        tmp.reserveCapacity(64)
    }

    deinit { walkBuf.deallocate() }

    /// A matcher at the start of the grammar.
    public func makeMatcher() -> GrammarMatcher { GrammarMatcher(self) }

    /// The mask of `state` (computing and caching it on first use): its index into `masks`.
    func mask(for state: [Int32]) -> Int {
        if let m = maskIndex[state] { return m }
        if masks.count >= maxMasks { masks.removeAll(); maskIndex.removeAll(); maskAnyAllowed.removeAll() }
        let t0 = DispatchTime.now().uptimeNanoseconds
        var bits = [UInt64](repeating: 0, count: words)
        var any = false
        grammar.scratchFrom = grammar.nodePos.count
        let keep = grammar.nodePos.count
        let n = state.count
        ensure(n)
        for k in 0..<n { walkBuf[k] = state[k] }
        bits.withUnsafeMutableBufferPointer { b in walk(node: 0, lo: 0, hi: n, top: n, bits: b.baseAddress!, any: &any) }
        grammar.nodePos.removeLast(grammar.nodePos.count - keep)
        grammar.nodeParent.removeLast(grammar.nodeParent.count - keep)
        grammar.scratchFrom = nil
        masks.append(bits)
        maskAnyAllowed.append(any)
        maskIndex[state] = masks.count - 1
        masksComputed += 1
        maskSeconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        return masks.count - 1
    }

    private func ensure(_ n: Int) {
        guard n > walkCap else { return }
        let bigger = UnsafeMutablePointer<Int32>.allocate(capacity: n * 2)
        bigger.update(from: walkBuf, count: walkCap)
        walkBuf.deallocate()
        walkBuf = bigger
        walkCap = n * 2
    }

    /// Depth-first over the trie below `node` with the state walkBuf[lo..<hi]; `top` is the first
    /// free slot of walkBuf. Every token whose bytes the grammar accepts gets its bit.
    private func walk(node: Int32, lo: Int, hi: Int, top: Int, bits: UnsafeMutablePointer<UInt64>, any: inout Bool) {
        var next = ByteSet()
        for k in lo..<hi where walkBuf[k] >= 0 { next.formUnion(grammar.sets[Int(grammar.nodePos[Int(walkBuf[k])])]) }
        if next.isEmpty { return }
        let v = vocabulary
        var c = v.firstChild[Int(node)]
        while c >= 0 {
            let b = v.byte[Int(c)]
            if next.contains(b) {
                tmp.removeAll(keepingCapacity: true)
                for k in lo..<hi where walkBuf[k] >= 0 {
                    let leaf = walkBuf[k]
                    let pos = grammar.nodePos[Int(leaf)]
                    if grammar.sets[Int(pos)].contains(b) { grammar.expand(pos + 1, grammar.nodeParent[Int(leaf)], into: &tmp) }
                }
                if !tmp.isEmpty {
                    for k in Int(v.tokStart[Int(c)])..<Int(v.tokEnd[Int(c)]) {
                        let t = Int(v.sortedTokens[k])
                        bits[t >> 6] |= UInt64(1) << UInt64(t & 63)
                        any = true
                    }
                    let m = tmp.count
                    ensure(top + m)
                    for k in 0..<m { walkBuf[top + k] = tmp[k] }
                    walk(node: c, lo: top, hi: top + m, top: top + m, bits: bits, any: &any)
                }
            }
            c = v.nextSibling[Int(c)]
        }
    }
}

/// One request's position in its grammar: advances over each sampled token's bytes and masks the
/// logits of the next step. Terminators (EOS, stop token ids) are allowed only where the grammar
/// accepts, or when no token can continue (so a dead end stops instead of looping).
public final class GrammarMatcher {
    public let structured: StructuredGrammar
    /// Sorted leaf ids (`CompiledGrammar.accept` for the empty stack).
    public private(set) var state: [Int32]
    private var next: [Int32] = []
    /// Token ids that end the output (EOS, stop token ids): allowed only where the grammar accepts.
    public var terminators: [Int] = []

    init(_ s: StructuredGrammar) {
        structured = s
        state = s.grammar.initialState()
        state.reserveCapacity(16); next.reserveCapacity(16)
    }

    /// The grammar is complete here (a terminator may end the output).
    public var isAccepting: Bool { state.first == CompiledGrammar.accept }
    /// No byte can follow (only a terminator fits).
    public var isTerminated: Bool { state.allSatisfy { $0 < 0 } }

    /// Consumes `token`'s bytes; false (and a dead state) if the grammar rejects them. A token
    /// without bytes (special) is rejected unless it is a terminator, which leaves the state alone.
    @discardableResult
    public func advance(token: Int, isTerminator: Bool = false) -> Bool {
        if isTerminator { return isAccepting }
        guard token >= 0, token < structured.vocabulary.count, let bytes = structured.vocabulary.tokenBytes[token] else {
            state.removeAll(keepingCapacity: true)
            return false
        }
        return advance(bytes: bytes)
    }

    /// Consumes raw bytes (tests, and text forced into the output).
    @discardableResult
    public func advance<C: Collection>(bytes: C) -> Bool where C.Element == UInt8 {
        let g = structured.grammar
        for b in bytes {
            next.removeAll(keepingCapacity: true)
            state.withUnsafeBufferPointer { s in
                for leaf in s where leaf >= 0 {
                    let pos = g.nodePos[Int(leaf)]
                    if g.sets[Int(pos)].contains(b) { g.expand(pos + 1, g.nodeParent[Int(leaf)], into: &next) }
                }
            }
            next.sort()
            swap(&state, &next)
            if state.isEmpty { return false }
        }
        return true
    }

    /// Whether the grammar allows `token` next (its mask bit).
    public func allows(token: Int) -> Bool {
        let m = structured.masks[structured.mask(for: state)]
        return token >= 0 && token < structured.vocabulary.count && m[token >> 6] & (UInt64(1) << UInt64(token & 63)) != 0
    }

    /// Sets to -infinity every logit of `row` (`count` of them) the grammar does not allow here;
    /// `terminators` (EOS, stop ids) stay as they are where the grammar accepts or nothing else fits.
    /// Allocates nothing once the state's mask is cached (unless there are more than two terminators).
    public func applyMask(_ row: UnsafeMutablePointer<Float>, count: Int) {
        let s = structured
        let mi = s.mask(for: state)
        let keepTerminators = isAccepting || !s.maskAnyAllowed[mi]
        // Save the terminators' logits (few; restored after masking).
        var saved0: Float = 0, saved1: Float = 0
        if keepTerminators {
            if terminators.count > 0, terminators[0] < count { saved0 = row[terminators[0]] }
            if terminators.count > 1, terminators[1] < count { saved1 = row[terminators[1]] }
        }
        let savedRest: [Float] = keepTerminators && terminators.count > 2 ? terminators.dropFirst(2).map { $0 < count ? row[$0] : 0 } : []
        s.masks[mi].withUnsafeBufferPointer { m in
            let n = min(count, s.vocabulary.count)
            var w = 0
            while w * 64 < n {
                let bits = m[w]
                if bits != .max {
                    let base = w * 64
                    let end = min(base + 64, n)
                    for t in base..<end where bits & (UInt64(1) << UInt64(t - base)) == 0 { row[t] = -.infinity }
                }
                w += 1
            }
            for t in n..<count { row[t] = -.infinity }
        }
        if keepTerminators {
            for (k, t) in terminators.enumerated() where t >= 0 && t < count {
                row[t] = k == 0 ? saved0 : k == 1 ? saved1 : savedRest[k - 2]
            }
        }
    }
}

/// The engine's compiled constraints for one vocabulary, keyed by spec, so a schema is compiled
/// once and its masks are shared by every request that uses it. At most `capacity` constraints
/// are kept (the least recently used goes first).
public final class StructuredOutputCache: @unchecked Sendable {
    public let vocabulary: TokenVocabulary
    public let capacity: Int
    private let lock = NSLock()
    private var entries: [StructuredOutputSpec: (grammar: StructuredGrammar, lastUse: Int)] = [:]
    private var clock = 0

    public init(vocabulary: TokenVocabulary, capacity: Int = 64) {
        self.vocabulary = vocabulary
        self.capacity = capacity
    }

    /// The compiled constraint for `spec` (compiled now if not cached).
    public func grammar(for spec: StructuredOutputSpec) throws -> StructuredGrammar {
        lock.lock()
        defer { lock.unlock() }
        clock += 1
        if let e = entries[spec] {
            entries[spec] = (e.grammar, clock)
            return e.grammar
        }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let g = try spec.compileGrammar()
        let s = StructuredGrammar(
            grammar: g, vocabulary: vocabulary,
            compileSeconds: Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        if entries.count >= capacity, let oldest = entries.min(by: { $0.value.lastUse < $1.value.lastUse })?.key {
            entries[oldest] = nil
        }
        entries[spec] = (s, clock)
        return s
    }
}
