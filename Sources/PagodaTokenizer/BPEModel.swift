import Foundation

/// The `BPE` model of tokenizer.json: byte-level (GPT-2, Llama 3, Qwen2) or SentencePiece-style with
/// `byte_fallback` (Llama 2, Phi-3). Each word starts as one symbol per scalar and the lowest-ranked merge is
/// applied until none applies; a min-heap of candidate pairs keeps this O(n log n) in the word's length.
/// Results are cached per word (thread-safe).
final class BPEModel: @unchecked Sendable {
    let vocab: [ExactString: Int]
    /// id -> token (nil where the vocab has a gap)
    let idToToken: [String?]
    /// (left id << 32 | right id) -> (rank << 32 | merged id)
    private let merges: [UInt64: UInt64]
    private let unkId: Int?
    private let fuseUnk: Bool
    private let byteFallback: Bool
    private let continuingSubwordPrefix: String?
    private let endOfWordSuffix: String?
    private let ignoreMerges: Bool
    /// byte -> id of `<0xXX>` (byte_fallback), -1 where missing.
    private let byteTokenIds: [Int]
    /// For byte-level words without prefix/suffix: scalar (< 0x144) -> id of the one-scalar token, -1 where missing.
    private let singleScalarIds: [Int]

    private let cacheLock = NSLock()
    private var cache: [ExactString: [Int]] = [:]
    /// Cache of `tokenizeByteLevel`, keyed by the word's raw UTF-8 (a different key space from `cache`).
    private var byteLevelCache: [ExactString: [Int]] = [:]
    /// byte -> id of the token for that byte's byte-level scalar, -1 where missing.
    private var byteLevelIds: [Int] = []
    /// Whether `tokenizeByteLevel` applies: no subword prefix/suffix and every byte has a token.
    private(set) var supportsByteLevelWords = false
    static let cacheCapacity = 10_000
    /// Longer words are not cached: without a pre-tokenizer (Llama 2) a whole prompt is one word.
    static let maxCachedWordLength = 256

    /// Reads tokenizer.json's `model` object (vocab, merges and options).
    convenience init(json: JSONObject) throws {
        let path = json.path
        guard let vocabPairs = json.dict["vocab"] as? JSONPairs else {
            throw TokenizerError.invalidField(path: path, field: "model.vocab", reason: "expected an object")
        }
        var vocab: [ExactString: Int] = [:]
        vocab.reserveCapacity(vocabPairs.pairs.count)
        for (k, v) in vocabPairs.pairs {
            guard let n = v as? NSNumber else {
                throw TokenizerError.invalidField(path: path, field: "model.vocab.\(k)", reason: "expected an integer id")
            }
            let d = n.doubleValue
            guard d >= 0, d < 1e8, d == d.rounded() else {
                throw TokenizerError.invalidField(path: path, field: "model.vocab.\(k)", reason: "id \(n) is not in 0..<100000000")
            }
            vocab[ExactString(k)] = Int(d)
        }

        // Merges: "a b" strings (tokenizers < 0.20) or [a, b] pairs.
        let rawMerges = json.isNull("merges") ? [] : try json.array("merges")
        var merges: [(String, String)] = []
        merges.reserveCapacity(rawMerges.count)
        for (rank, m) in rawMerges.enumerated() {
            if let s = m as? String {
                guard let sp = s.firstIndex(of: " ") else {
                    throw TokenizerError.invalidField(path: path, field: "model.merges[\(rank)]", reason: "expected \"left right\"")
                }
                merges.append((String(s[..<sp]), String(s[s.index(after: sp)...])))
            } else if let pair = m as? [String], pair.count == 2 {
                merges.append((pair[0], pair[1]))
            } else {
                throw TokenizerError.invalidField(path: path, field: "model.merges[\(rank)]", reason: "expected a string or a pair of strings")
            }
        }
        try self.init(
            vocab: vocab, merges: merges,
            unkToken: try json.optionalString("unk_token"),
            fuseUnk: try json.bool("fuse_unk", default: false),
            byteFallback: try json.bool("byte_fallback", default: false),
            ignoreMerges: try json.bool("ignore_merges", default: false),
            continuingSubwordPrefix: try json.optionalString("continuing_subword_prefix").flatMap { $0.isEmpty ? nil : $0 },
            endOfWordSuffix: try json.optionalString("end_of_word_suffix").flatMap { $0.isEmpty ? nil : $0 },
            path: path, field: "model")
    }

    /// A BPE model from its parts: `vocab` token -> id, `merges` in rank order (rank = index). `field` names where
    /// they came from in errors ("model" for tokenizer.json; `field.merges[rank]`, `field.unk_token`).
    init(
        vocab: [ExactString: Int], merges mergeList: [(String, String)], unkToken: String?, fuseUnk: Bool, byteFallback: Bool,
        ignoreMerges: Bool, continuingSubwordPrefix: String?, endOfWordSuffix: String?, path: String, field: String
    ) throws {
        let maxId = vocab.values.max() ?? -1
        var idToToken = [String?](repeating: nil, count: maxId + 1)
        for (k, id) in vocab { idToToken[id] = k.string }
        self.vocab = vocab
        self.idToToken = idToToken

        self.continuingSubwordPrefix = continuingSubwordPrefix
        self.endOfWordSuffix = endOfWordSuffix
        self.fuseUnk = fuseUnk
        self.byteFallback = byteFallback
        self.ignoreMerges = ignoreMerges
        if let unk = unkToken {
            guard let id = vocab[ExactString(unk)] else {
                throw TokenizerError.invalidField(path: path, field: "\(field).unk_token", reason: "\"\(unk)\" is not in the vocab")
            }
            unkId = id
        } else {
            unkId = nil
        }

        var merges: [UInt64: UInt64] = [:]
        merges.reserveCapacity(mergeList.count)
        let prefixCount = continuingSubwordPrefix?.count ?? 0
        for (rank, (a, b)) in mergeList.enumerated() {
            guard let ia = vocab[ExactString(a)], let ib = vocab[ExactString(b)] else {
                throw TokenizerError.invalidField(
                    path: path, field: "\(field).merges[\(rank)]", reason: "token \"\(vocab[ExactString(a)] == nil ? a : b)\" is not in the vocab")
            }
            let mergedString = a + (prefixCount > 0 && b.hasPrefix(continuingSubwordPrefix!) ? String(b.dropFirst(prefixCount)) : b)
            guard let merged = vocab[ExactString(mergedString)] else {
                throw TokenizerError.invalidField(
                    path: path, field: "\(field).merges[\(rank)]", reason: "merged token \"\(mergedString)\" is not in the vocab")
            }
            let key = UInt64(ia) << 32 | UInt64(ib)
            if merges[key] == nil { merges[key] = UInt64(rank) << 32 | UInt64(merged) }
        }
        self.merges = merges

        var byteIds = [Int](repeating: -1, count: 256)
        if byteFallback {
            for b in 0..<256 { byteIds[b] = vocab[ExactString(String(format: "<0x%02X>", b))] ?? -1 }
        }
        byteTokenIds = byteIds
        var single = [Int](repeating: -1, count: 0x144)
        for v in 0..<0x144 {
            if let u = Unicode.Scalar(UInt32(v)) { single[v] = vocab[ExactString(String(Character(u)))] ?? -1 }
        }
        singleScalarIds = single
        byteLevelIds = ByteLevelAlphabet.byteToScalar.map { single[Int($0.value)] }
        supportsByteLevelWords = continuingSubwordPrefix == nil && endOfWordSuffix == nil && !byteLevelIds.contains(-1)
    }

    /// Token ids of one word given as raw UTF-8 that a ByteLevel pre-tokenizer would map to its alphabet:
    /// the same result as `tokenize(mapped scalars)`, without building the mapped text (hot path of byte-level
    /// tokenizers). Requires `supportsByteLevelWords`.
    func tokenizeByteLevel(_ utf8: UnsafeBufferPointer<UInt8>, into out: inout [Int]) {
        if utf8.isEmpty { return }
        let key = ExactString(String(decoding: utf8, as: UTF8.self))
        cacheLock.lock()
        let hit = byteLevelCache[key]
        cacheLock.unlock()
        if let hit = hit {
            out.append(contentsOf: hit)
            return
        }
        var ids: [Int]
        if utf8.count == 1 {
            ids = [byteLevelIds[Int(utf8[0])]]
        } else {
            ids = []
            if ignoreMerges {
                var v = String.UnicodeScalarView()
                for b in utf8 { v.append(ByteLevelAlphabet.byteToScalar[Int(b)]) }
                if let id = vocab[ExactString(String(v))] { ids = [id] }
            }
            if ids.isEmpty {
                ids = utf8.map { byteLevelIds[Int($0)] }
                mergeAll(&ids)
            }
        }
        cacheLock.lock()
        if byteLevelCache.count < BPEModel.cacheCapacity && utf8.count <= BPEModel.maxCachedWordLength { byteLevelCache[key] = ids }
        cacheLock.unlock()
        out.append(contentsOf: ids)
    }

    /// Token ids of one pre-tokenized word.
    func tokenize(_ word: [Unicode.Scalar], into out: inout [Int]) {
        if word.isEmpty { return }
        let key = ExactString(String(String.UnicodeScalarView(word)))
        cacheLock.lock()
        let hit = cache[key]
        cacheLock.unlock()
        if let hit = hit {
            out.append(contentsOf: hit)
            return
        }
        let ids = tokenizeUncached(word, key: key)
        cacheLock.lock()
        if cache.count < BPEModel.cacheCapacity && word.count <= BPEModel.maxCachedWordLength { cache[key] = ids }
        cacheLock.unlock()
        out.append(contentsOf: ids)
    }

    private func tokenizeUncached(_ word: [Unicode.Scalar], key: ExactString) -> [Int] {
        if ignoreMerges, let id = vocab[key] { return [id] }
        var symbols = initialSymbols(word)
        if symbols.count > 1 { mergeAll(&symbols) }
        return symbols
    }

    /// One id per scalar (with prefix/suffix, byte fallback and unk handling as `BPE::merge_word`).
    private func initialSymbols(_ word: [Unicode.Scalar]) -> [Int] {
        var ids: [Int] = []
        ids.reserveCapacity(word.count)
        var pendingUnk = false
        let n = word.count
        for (i, c) in word.enumerated() {
            var id = -1
            var piece: String? = nil
            let plain = (i == 0 || continuingSubwordPrefix == nil) && (i != n - 1 || endOfWordSuffix == nil)
            if plain && c.value < 0x144 {
                id = singleScalarIds[Int(c.value)]
            } else {
                var s = String(Character(c))
                if i > 0, let p = continuingSubwordPrefix { s = p + s }
                if i == n - 1, let suf = endOfWordSuffix { s += suf }
                id = vocab[ExactString(s)] ?? -1
                piece = s
            }
            if id >= 0 {
                if pendingUnk, let u = unkId { ids.append(u) }
                pendingUnk = false
                ids.append(id)
                continue
            }
            if byteFallback {
                let bytes = Array((piece ?? String(Character(c))).utf8)
                if bytes.allSatisfy({ byteTokenIds[Int($0)] >= 0 }) {
                    if pendingUnk, let u = unkId { ids.append(u) }
                    pendingUnk = false
                    for b in bytes { ids.append(byteTokenIds[Int(b)]) }
                    continue
                }
            }
            if let u = unkId {
                if pendingUnk && !fuseUnk { ids.append(u) }
                pendingUnk = true
            }
        }
        if pendingUnk, let u = unkId { ids.append(u) }
        return ids
    }

    /// Applies merges lowest rank first (ties: leftmost), as `Word::merge_all` without dropout.
    private func mergeAll(_ ids: inout [Int]) {
        let n = ids.count
        var sym = ids
        var prev = [Int](repeating: -1, count: n)
        var next = [Int](repeating: -1, count: n)
        var alive = [Bool](repeating: true, count: n)
        for i in 0..<n {
            prev[i] = i - 1
            next[i] = i + 1 < n ? i + 1 : -1
        }
        // Heap entries: rank << 32 | position.
        var heap = MinHeap()
        for i in 0..<(n - 1) {
            if let m = merges[UInt64(sym[i]) << 32 | UInt64(sym[i + 1])] { heap.push((m >> 32) << 32 | UInt64(i)) }
        }
        while let top = heap.pop() {
            let pos = Int(top & 0xFFFF_FFFF)
            let rank = top >> 32
            guard alive[pos] else { continue }
            let r = next[pos]
            guard r >= 0 else { continue }
            guard let m = merges[UInt64(sym[pos]) << 32 | UInt64(sym[r])], m >> 32 == rank else { continue }
            sym[pos] = Int(m & 0xFFFF_FFFF)
            alive[r] = false
            let rr = next[r]
            next[pos] = rr
            if rr >= 0 { prev[rr] = pos }
            let p = prev[pos]
            if p >= 0, let m2 = merges[UInt64(sym[p]) << 32 | UInt64(sym[pos])] { heap.push((m2 >> 32) << 32 | UInt64(p)) }
            if rr >= 0, let m2 = merges[UInt64(sym[pos]) << 32 | UInt64(sym[rr])] { heap.push((m2 >> 32) << 32 | UInt64(pos)) }
        }
        ids.removeAll(keepingCapacity: true)
        var i = 0
        while i >= 0 {
            ids.append(sym[i])
            i = next[i]
        }
    }
}

/// A binary min-heap of UInt64 keys.
struct MinHeap {
    private var a: [UInt64] = []

    mutating func push(_ x: UInt64) {
        a.append(x)
        var i = a.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if a[p] <= a[i] { break }
            a.swapAt(p, i)
            i = p
        }
    }

    mutating func pop() -> UInt64? {
        guard let top = a.first else { return nil }
        let last = a.removeLast()
        if !a.isEmpty {
            a[0] = last
            var i = 0
            let n = a.count
            while true {
                let l = 2 * i + 1
                if l >= n { break }
                var c = l
                if l + 1 < n && a[l + 1] < a[l] { c = l + 1 }
                if a[i] <= a[c] { break }
                a.swapAt(i, c)
                i = c
            }
        }
        return top
    }
}
