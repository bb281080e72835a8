/// One element of a grammar sequence: a byte from a set, or a whole rule.
public enum GrammarSymbol: Hashable, Sendable {
    case bytes(ByteSet)
    case rule(Int)
}

/// A context-free grammar over bytes, the form every constraint compiles to (JSON schema, regex,
/// choice, GBNF): each rule is a list of alternatives, each a sequence of symbols; an empty
/// sequence matches the empty string. Rules must not be left-recursive (`validate` checks), so the
/// matcher's stacks stay finite.
public struct Grammar: Sendable, Equatable {
    public var names: [String] = []
    public var rules: [[[GrammarSymbol]]] = []
    public var root: Int = 0

    public init() {}

    /// Checks that every referenced rule exists and that no rule can reach itself without first
    /// consuming a byte (left recursion, which a top-down matcher cannot run).
    public func validate() throws {
        let nullable = nullableRules()
        // left[r]: rules reachable from r at the left edge (through nullable prefixes).
        var left = [[Int]](repeating: [], count: rules.count)
        for (r, alts) in rules.enumerated() {
            for seq in alts {
                for sym in seq {
                    guard case .rule(let t) = sym else { break }
                    guard t >= 0 && t < rules.count else { throw StructuredOutputError.invalidGrammar("reference to an undefined rule") }
                    left[r].append(t)
                    if !nullable[t] { break }
                }
            }
        }
        // Depth-first search for a cycle in the left graph.
        var color = [UInt8](repeating: 0, count: rules.count)
        func visit(_ r: Int) throws {
            color[r] = 1
            for t in left[r] {
                if color[t] == 1 { throw StructuredOutputError.invalidGrammar("rule '\(names[t])' is left-recursive") }
                if color[t] == 0 { try visit(t) }
            }
            color[r] = 2
        }
        for r in rules.indices where color[r] == 0 { try visit(r) }
    }

    /// Which rules can match the empty string (fixed point).
    func nullableRules() -> [Bool] {
        var nullable = [Bool](repeating: false, count: rules.count)
        var changed = true
        while changed {
            changed = false
            for (r, alts) in rules.enumerated() where !nullable[r] {
                let n = alts.contains { seq in
                    seq.allSatisfy {
                        if case .rule(let t) = $0, t >= 0, t < rules.count { return nullable[t] }; return false
                    }
                }
                if n { nullable[r] = true; changed = true }
            }
        }
        return nullable
    }
}

/// Builds a `Grammar` from parts: named rules, literals, and the repetition forms (`*`, `+`, `?`,
/// `{m,n}`) expanded into right-recursive helper rules.
public final class GrammarBuilder {
    public private(set) var grammar = Grammar()
    /// Shared building blocks already defined (name → rule), so each appears once.
    var cached: [String: Int] = [:]

    public init() {}

    /// A new rule with no alternatives yet (set them with `define`); returns its index.
    public func declare(_ name: String) -> Int {
        grammar.names.append(name)
        grammar.rules.append([])
        return grammar.rules.count - 1
    }

    public func define(_ rule: Int, _ alternatives: [[GrammarSymbol]]) { grammar.rules[rule] = alternatives }

    /// A rule with the given alternatives, as one symbol.
    public func rule(_ name: String, _ alternatives: [[GrammarSymbol]]) -> GrammarSymbol {
        if alternatives.count == 1, alternatives[0].count == 1, case .rule = alternatives[0][0] { return alternatives[0][0] }
        let r = declare(name)
        define(r, alternatives)
        return .rule(r)
    }

    /// The UTF-8 bytes of `s`, one symbol per byte.
    public func literal(_ s: String) -> [GrammarSymbol] { s.utf8.map { .bytes(ByteSet($0)) } }

    /// `seq*`: R ::= seq R | ε.
    public func star(_ seq: [GrammarSymbol], _ name: String) -> GrammarSymbol {
        let r = declare(name)
        define(r, [seq + [.rule(r)], []])
        return .rule(r)
    }

    /// `seq?`.
    public func optional(_ seq: [GrammarSymbol], _ name: String) -> GrammarSymbol { rule(name, [seq, []]) }

    /// `seq{min,max}` (max nil: unbounded), as min copies followed by nested optionals or a star.
    public func repeated(_ seq: [GrammarSymbol], min: Int, max: Int?, _ name: String) -> [GrammarSymbol] {
        var out: [GrammarSymbol] = []
        for _ in 0..<min { out += seq }
        guard let max else { return out + [star(seq, name)] }
        guard max > min else { return out }
        // tail_k ::= seq tail_{k-1} | ε, built from the innermost out.
        var tail: GrammarSymbol? = nil
        for _ in 0..<(max - min) { tail = optional(seq + (tail.map { [$0] } ?? []), name) }
        return out + [tail!]
    }

    /// Sets the root and validates.
    public func finish(root: Int) throws -> Grammar {
        grammar.root = root
        try grammar.validate()
        return grammar
    }
}
