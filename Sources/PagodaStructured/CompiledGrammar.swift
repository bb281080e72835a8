/// A grammar flattened for matching, with its stack arena. Every alternative becomes a run of
/// elements in `kind`/`arg`/`sets` ending in an `end` element. A matcher state is a set of
/// *leaves*: stack nodes whose top element is a byte set (or `accept`, the empty stack). A node
/// is (element position, parent node): "match from here; when this alternative ends, continue with
/// the parent". Nodes are hash-consed, so equal stacks are equal ids and a state (sorted leaf ids)
/// can key a cache of token masks. Used by one thread (the engine's sampler) at a time.
public final class CompiledGrammar {
    enum Kind: UInt8 { case bytes, rule, end }
    static let accept: Int32 = -2
    static let bottom: Int32 = -1
    /// A stack cut below its top frames (`ContextMaskTable`): as a parent, "some frames not known
    /// here"; as a leaf, "the known frames are complete, the rest of the stack continues".
    static let popped: Int32 = -3

    let kind: [Kind]
    /// `rule`: rule index; `bytes`: unused.
    let arg: [Int32]
    let sets: [ByteSet]
    /// Start position of each alternative of each rule.
    let ruleStarts: [[Int32]]
    public let root: Int

    var nodePos: [Int32] = []
    var nodeParent: [Int32] = []
    /// (pos, parent) → id, for the interned nodes (ids below `internedCount`).
    var intern: [UInt64: Int32] = [:]
    /// Nodes at and above this index are scratch (mask computation) and are dropped after it.
    var scratchFrom: Int? = nil
    /// (pos, parent) → id for the scratch nodes, so equal scratch stacks are equal ids too.
    var scratchIntern: [UInt64: Int32] = [:]

    public init(_ g: Grammar) {
        var kind: [Kind] = [], arg: [Int32] = [], sets: [ByteSet] = []
        var starts: [[Int32]] = []
        for alts in g.rules {
            var s: [Int32] = []
            for seq in alts {
                s.append(Int32(kind.count))
                for sym in seq {
                    switch sym {
                    case .bytes(let set): kind.append(.bytes); arg.append(0); sets.append(set)
                    case .rule(let r): kind.append(.rule); arg.append(Int32(r)); sets.append(ByteSet())
                    }
                }
                kind.append(.end); arg.append(0); sets.append(ByteSet())
            }
            starts.append(s)
        }
        self.kind = kind; self.arg = arg; self.sets = sets; self.ruleStarts = starts; root = g.root
        nodePos.reserveCapacity(1024); nodeParent.reserveCapacity(1024)
    }

    /// Number of interned stack nodes (grows with the distinct stacks seen; tests and stats).
    public var internedNodes: Int { intern.count }

    @inline(__always) func node(_ pos: Int32, _ parent: Int32) -> Int32 {
        let key = UInt64(UInt32(bitPattern: pos)) << 32 | UInt64(UInt32(bitPattern: parent))
        if let id = intern[key] { return id }
        if scratchFrom != nil {
            if let id = scratchIntern[key] { return id }
            nodePos.append(pos); nodeParent.append(parent)
            let id = Int32(nodePos.count - 1)
            scratchIntern[key] = id
            return id
        }
        nodePos.append(pos); nodeParent.append(parent)
        let id = Int32(nodePos.count - 1)
        intern[key] = id
        return id
    }

    /// Starts making scratch nodes (interned among themselves, dropped by `endScratch`).
    func beginScratch() {
        precondition(scratchFrom == nil, "scratch sections do not nest")
        scratchFrom = nodePos.count
    }

    /// Drops the scratch nodes made since `beginScratch`.
    func endScratch() {
        guard let keep = scratchFrom else { return }
        nodePos.removeLast(nodePos.count - keep)
        nodeParent.removeLast(nodeParent.count - keep)
        scratchIntern.removeAll(keepingCapacity: true)
        scratchFrom = nil
    }

    /// Appends to `out` the leaves reached from "match at `pos`, then continue with `parent`".
    func expand(_ pos: Int32, _ parent: Int32, into out: inout [Int32], depth: Int = 0) {
        guard depth < 2000 else { return }  // cannot happen for validated grammars
        switch kind[Int(pos)] {
        case .bytes:
            let n = node(pos, parent)
            if !out.contains(n) { out.append(n) }
        case .end:
            if parent == Self.bottom {
                if !out.contains(Self.accept) { out.append(Self.accept) }
            } else if parent == Self.popped {
                if !out.contains(Self.popped) { out.append(Self.popped) }
            } else {
                expand(nodePos[Int(parent)], nodeParent[Int(parent)], into: &out, depth: depth + 1)
            }
        case .rule:
            // A rule at the end of its alternative returns straight to the parent (a tail call), so
            // right-recursive repetitions (`x*` as R ::= x R | ε) keep a constant stack depth and
            // their states recur, which is what lets the token masks be cached.
            let cont = kind[Int(pos) + 1] == .end ? parent : node(pos + 1, parent)
            for a in ruleStarts[Int(arg[Int(pos)])] { expand(a, cont, into: &out, depth: depth + 1) }
        }
    }

    /// The start state (interned leaves, sorted).
    public func initialState() -> [Int32] {
        var out: [Int32] = []
        for a in ruleStarts[root] { expand(a, Self.bottom, into: &out) }
        out.sort()
        return out
    }

    /// The leaves after consuming `byte` from `state`, appended to `out` (empty: rejected).
    @inline(__always) func advance(_ state: ArraySlice<Int32>, _ byte: UInt8, into out: inout [Int32]) {
        for leaf in state where leaf >= 0 {
            let pos = nodePos[Int(leaf)]
            if sets[Int(pos)].contains(byte) { expand(pos + 1, nodeParent[Int(leaf)], into: &out) }
        }
    }

    /// Whether the stack below `leaf` accepts `bytes` (scratch mode: the nodes made are dropped later).
    /// `a` and `b` are caller-owned buffers, reused.
    func accepts(leaf: Int32, _ bytes: [UInt8], _ a: inout [Int32], _ b: inout [Int32]) -> Bool {
        a.removeAll(keepingCapacity: true)
        a.append(leaf)
        for byte in bytes {
            b.removeAll(keepingCapacity: true)
            for l in a where l >= 0 {
                let pos = nodePos[Int(l)]
                if sets[Int(pos)].contains(byte) { expand(pos + 1, nodeParent[Int(l)], into: &b) }
            }
            if b.isEmpty { return false }
            swap(&a, &b)
        }
        return true
    }

    /// The bytes some leaf of `state` accepts next.
    func nextBytes(_ state: ArraySlice<Int32>) -> ByteSet {
        var u = ByteSet()
        for leaf in state where leaf >= 0 { u.formUnion(sets[Int(nodePos[Int(leaf)])]) }
        return u
    }
}
