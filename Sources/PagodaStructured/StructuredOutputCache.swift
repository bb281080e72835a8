import Foundation

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
