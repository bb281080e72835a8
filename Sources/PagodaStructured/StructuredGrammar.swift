import Foundation

/// A compiled constraint bound to one vocabulary: the flattened grammar and its token masks. A
/// state's mask is cached (least recently used dropped beyond `maxMasks`) and shared by every
/// request with the constraint, so a decode step normally costs a hash lookup and one pass over the
/// mask's words. A miss builds the mask from the per-context masks of `ContextMaskTable` (one word-wise
/// OR per leaf) plus a check of the leaves' few context-dependent tokens. Used from one thread at a time.
public final class StructuredGrammar: @unchecked Sendable {
    public let grammar: CompiledGrammar
    public let vocabulary: TokenVocabulary
    /// Wall time of the grammar compilation (parse + flatten), seconds.
    public let compileSeconds: Double
    let words: Int
    /// Masks beyond this many are dropped least recently used first (each is vocabulary/8 bytes).
    let maxMasks: Int
    private var slots: LRUSlots<[Int32]>
    /// One bitmask per slot (bit t set: token t allowed), `words` UInt64s each, flat.
    private var masks: [UInt64] = []
    private var anyAllowed: [Bool] = []
    let contexts: ContextMaskTable
    private var bufA: [Int32] = [], bufB: [Int32] = []
    /// Statistics: state masks computed (cache misses) and their total time in seconds.
    public private(set) var masksComputed = 0
    public private(set) var maskSeconds: Double = 0
    /// Statistics: contexts computed (one trie walk each), their time in seconds, and dependent tokens checked.
    public var contextsComputed: Int { contexts.computed }
    public var contextSeconds: Double { contexts.seconds }
    public private(set) var dependentChecks = 0

    public init(grammar g: Grammar, vocabulary: TokenVocabulary, compileSeconds: Double = 0, maxMasks: Int = 2048) {
        grammar = CompiledGrammar(g)
        self.vocabulary = vocabulary
        self.compileSeconds = compileSeconds
        words = (vocabulary.count + 63) / 64
        self.maxMasks = maxMasks
        slots = LRUSlots(capacity: maxMasks)
        contexts = ContextMaskTable(grammar: grammar, vocabulary: vocabulary, capacity: 1024)
        bufA.reserveCapacity(16); bufB.reserveCapacity(16)
    }

    /// A matcher at the start of the grammar.
    public func makeMatcher() -> GrammarMatcher { GrammarMatcher(self) }

    /// The mask of `state` (computing and caching it on first use): its slot.
    func mask(for state: [Int32]) -> Int {
        if let s = slots.lookup(state) { return s }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let (s, isNew) = slots.insert(state)
        if isNew {
            masks.append(contentsOf: repeatElement(0, count: words))
            anyAllowed.append(false)
        }
        let g = grammar
        var any = false
        masks.withUnsafeMutableBufferPointer { m in
            let bits = m.baseAddress! + s * words
            for w in 0..<words { bits[w] = 0 }
            for leaf in state where leaf >= 0 {
                // The context first (its walk makes and drops scratch nodes of its own), then the dependent checks.
                let c = contexts.slot(for: leaf)
                contexts.formUnion(slot: c, into: bits)
                g.beginScratch()
                for t32 in contexts.dependent[c] {
                    let t = Int(t32)
                    let bit = UInt64(1) << UInt64(t & 63)
                    if bits[t >> 6] & bit != 0 { continue }
                    dependentChecks += 1
                    if g.accepts(leaf: leaf, vocabulary.tokenBytes[t]!, &bufA, &bufB) { bits[t >> 6] |= bit }
                }
                g.endScratch()
            }
            for w in 0..<words where bits[w] != 0 { any = true; break }
        }
        anyAllowed[s] = any
        masksComputed += 1
        maskSeconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        return s
    }

    /// Whether the mask in slot `s` allows any token.
    func allowsAny(slot s: Int) -> Bool { anyAllowed[s] }

    /// Whether the mask in slot `s` has token `t`'s bit.
    func allows(slot s: Int, token t: Int) -> Bool { masks[s * words + (t >> 6)] & (UInt64(1) << UInt64(t & 63)) != 0 }

    /// Calls `body` with the mask words of slot `s`.
    func withMask<R>(slot s: Int, _ body: (UnsafePointer<UInt64>) -> R) -> R {
        masks.withUnsafeBufferPointer { body($0.baseAddress! + s * words) }
    }
}
