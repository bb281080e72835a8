/// One request's position in its grammar: advances over each sampled token's bytes and masks the
/// logits of the next step. Terminators (EOS, stop token ids) are allowed only where the grammar
/// accepts, or when no token can continue (so a dead end stops instead of looping).
public final class GrammarMatcher {
    public let structured: StructuredGrammar
    /// Sorted leaf ids (`CompiledGrammar.accept` for the empty stack).
    public private(set) var state: [Int32]
    private var next: [Int32] = []
    /// Token ids that end the output (EOS, stop token ids): allowed only where the grammar accepts.
    public var terminators: [Int] = [] {
        didSet { savedLogits = [Float](repeating: 0, count: terminators.count) }
    }
    private var savedLogits: [Float] = []

    init(_ s: StructuredGrammar) {
        structured = s
        state = s.grammar.initialState()
        state.reserveCapacity(16); next.reserveCapacity(16)
    }

    /// The grammar is complete here (a terminator may end the output).
    public var isAccepting: Bool { state.first == CompiledGrammar.accept }
    /// No byte can follow (only a terminator fits).
    public var isTerminated: Bool { state.allSatisfy { $0 < 0 } }
    /// No token but a terminator fits here (the grammar is complete and cannot continue, or no token
    /// of the vocabulary continues it): the output must end, whatever `min_tokens` says.
    public var mustEnd: Bool { isTerminated || !structured.allowsAny(slot: structured.mask(for: state)) }

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
        guard token >= 0 && token < structured.vocabulary.count else { return false }
        return structured.allows(slot: structured.mask(for: state), token: token)
    }

    /// Sets to -infinity every logit of `row` (`count` of them) the grammar does not allow here, a
    /// 64-bit mask word at a time; `terminators` (EOS, stop ids) stay as they are where the grammar
    /// accepts or nothing else fits. Allocates nothing once the state's mask is cached.
    public func applyMask(_ row: UnsafeMutablePointer<Float>, count: Int) {
        let s = structured
        let slot = s.mask(for: state)
        let keepTerminators = isAccepting || !s.allowsAny(slot: slot)
        if keepTerminators {
            for (k, t) in terminators.enumerated() where t >= 0 && t < count { savedLogits[k] = row[t] }
        }
        let n = min(count, s.vocabulary.count)
        s.withMask(slot: slot) { m in
            let full = n / 64
            for w in 0..<full {
                let bits = m[w]
                if bits == .max { continue }
                let base = row + w * 64
                if bits == 0 {
                    for j in 0..<64 { base[j] = -.infinity }
                    continue
                }
                var clear = ~bits
                while clear != 0 {
                    base[clear.trailingZeroBitCount] = -.infinity
                    clear &= clear - 1
                }
            }
            if full * 64 < n {
                let bits = m[full]
                for t in (full * 64)..<n where bits & (UInt64(1) << UInt64(t & 63)) == 0 { row[t] = -.infinity }
            }
        }
        for t in n..<count { row[t] = -.infinity }
        if keepTerminators {
            for (k, t) in terminators.enumerated() where t >= 0 && t < count { row[t] = savedLogits[k] }
        }
    }
}
