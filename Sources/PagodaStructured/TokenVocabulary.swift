/// The vocabulary as byte strings in a trie, built once per tokenizer: a token mask walks the trie
/// once per grammar state, pruning every subtree whose prefix the grammar rejects, instead of
/// matching each of the (100k+) tokens separately. Nodes are numbered in depth-first order with
/// children in byte order, and the tokens are sorted by their bytes, so the tokens ending at a node
/// are one contiguous run of `sortedTokens`.
public final class TokenVocabulary: @unchecked Sendable {
    /// Number of token ids (tokens without bytes, e.g. special tokens, are never allowed by a mask).
    public let count: Int
    /// Each token's bytes (nil: special or unknown).
    public let tokenBytes: [[UInt8]?]
    let byte: [UInt8]
    let firstChild: [Int32]
    let nextSibling: [Int32]
    /// Tokens ending at node n: sortedTokens[tokStart[n]..<tokEnd[n]].
    let tokStart: [Int32]
    let tokEnd: [Int32]
    let sortedTokens: [Int32]
    /// Tokens in the subtree of node n (n's own first): sortedTokens[tokStart[n]..<subtreeEnd[n]].
    let subtreeEnd: [Int32]
    public var nodeCount: Int { byte.count }

    public init(tokenBytes: [[UInt8]?]) {
        count = tokenBytes.count
        self.tokenBytes = tokenBytes
        let ids = tokenBytes.indices.filter { tokenBytes[$0].map { !$0.isEmpty } ?? false }
        let sorted = ids.sorted { a, b in tokenBytes[a]!.lexicographicallyPrecedes(tokenBytes[b]!) }
        var byte: [UInt8] = [0], first: [Int32] = [-1], next: [Int32] = [-1], ts: [Int32] = [0], te: [Int32] = [0]
        var lastChild: [Int32] = [-1]
        // path[d]: node at depth d on the current path (path[0] = root).
        var path: [Int32] = [0]
        var prev: [UInt8] = []
        for (k, id) in sorted.enumerated() {
            let bytes = tokenBytes[id]!
            var common = 0
            while common < prev.count, common < bytes.count, prev[common] == bytes[common] { common += 1 }
            path.removeLast(path.count - 1 - common)
            for d in common..<bytes.count {
                let parent = path[d]
                let n = Int32(byte.count)
                byte.append(bytes[d]); first.append(-1); next.append(-1); lastChild.append(-1)
                ts.append(Int32(k)); te.append(Int32(k))
                if lastChild[Int(parent)] < 0 { first[Int(parent)] = n } else { next[Int(lastChild[Int(parent)])] = n }
                lastChild[Int(parent)] = n
                path.append(n)
            }
            let end = Int(path[bytes.count])
            if te[end] == ts[end] && ts[end] != Int32(k) { ts[end] = Int32(k); te[end] = Int32(k) }
            te[end] = Int32(k + 1)
            prev = bytes
        }
        self.byte = byte; firstChild = first; nextSibling = next; tokStart = ts; tokEnd = te
        sortedTokens = sorted.map { Int32($0) }
        // Nodes are numbered depth first, so a node's descendants follow it: fold ends from the back.
        var sub = te
        for n in stride(from: byte.count - 1, through: 0, by: -1) {
            var c = first[n]
            while c >= 0 { sub[n] = max(sub[n], sub[Int(c)]); c = next[Int(c)] }
        }
        subtreeEnd = sub
    }
}
