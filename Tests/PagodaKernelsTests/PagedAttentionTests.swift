import XCTest

@testable import PagodaKernels

/// Paged attention over scattered blocks against the naive twin on gathered K/V (tolerance 1e-5).
final class PagedAttentionTests: XCTestCase {
    func testGQAChunkedPrefillOverCachedPrefix() {
        // The head sizes of the vectorized kernel (16, 64, 128) and one of the scalar loop (24); block sizes that
        // split and do not split the 16-position chunks; contexts past one chunk and a partial last one.
        // Query heads per KV head: 2, 7 (a group of four and one of three), 3 at head size 128 (groups of two and
        // one), 1 (no grouping).
        let cases: [(d: Int, bs: Int, cached: [Int], new: [Int], heads: Int, kvHeads: Int)] = [
            (16, 4, [6, 9], [3, 1], 4, 2), (64, 16, [21, 37], [19, 1], 14, 2), (128, 5, [2, 40], [3, 1], 6, 2),
            (24, 4, [6, 9], [3, 1], 4, 2), (32, 16, [17, 3], [2, 1], 3, 3),
        ]
        for c in cases {
            check(headDim: c.d, blockSize: c.bs, cachedLens: c.cached, newTokens: c.new, numHeads: c.heads, kvHeads: c.kvHeads)
        }
    }

    private func check(headDim d: Int, blockSize bs: Int, cachedLens: [Int], newTokens: [Int], numHeads: Int, kvHeads: Int) {
        var rng = SeededRandom(9)
        let perGroup = numHeads / kvHeads
        let rowSize = kvHeads * d
        // Two requests: r0 has cached tokens and prefills more; r1 decodes one; blocks scattered over the cache.
        let blocksPerRequest = (0..<2).map { (cachedLens[$0] + newTokens[$0] + bs - 1) / bs }
        let numBlocks = blocksPerRequest.reduce(0, +) + 3
        let keys = rng.floats(numBlocks)
        let order = (0..<numBlocks).sorted { keys[$0] < keys[$1] }.map { Int32($0) }
        let tables: [[Int32]] = [
            Array(order[0..<blocksPerRequest[0]]), Array(order[blocksPerRequest[0]..<(blocksPerRequest[0] + blocksPerRequest[1])]),
        ]
        var kc = [Float](repeating: 0, count: numBlocks * bs * rowSize), vc = kc
        let maxContext = 64
        // Fill the cached prefix K/V.
        var kAll: [[[Float]]] = [[], []], vAll: [[[Float]]] = [[], []]  // [req][pos] -> row
        for r in 0..<2 {
            for p in 0..<(cachedLens[r] + newTokens[r]) {
                kAll[r].append(rng.floats(rowSize))
                vAll[r].append(rng.floats(rowSize))
                if p < cachedLens[r] {
                    let slot = Int(tables[r][p / bs]) * bs + p % bs
                    for i in 0..<rowSize {
                        kc[slot * rowSize + i] = kAll[r][p][i]
                        vc[slot * rowSize + i] = vAll[r][p][i]
                    }
                }
            }
        }
        // This step's tokens.
        var positions: [Int32] = [], slots: [Int32] = [], tokenRequest: [Int32] = []
        var newK: [Float] = [], newV: [Float] = []
        for r in 0..<2 {
            for j in 0..<newTokens[r] {
                let p = cachedLens[r] + j
                positions.append(Int32(p))
                slots.append(tables[r][p / bs] * Int32(bs) + Int32(p % bs))
                tokenRequest.append(Int32(r))
                newK += kAll[r][p]
                newV += vAll[r][p]
            }
        }
        let n = positions.count
        PagedAttention.writeKV(
            key: newK, value: newV, ldKey: rowSize, ldValue: rowSize, slotMapping: slots, count: n, keyCache: &kc,
            valueCache: &vc, rowSize: rowSize)
        let q = rng.floats(n * numHeads * d)
        var out = [Float](repeating: .nan, count: n * numHeads * d)
        let pool = ThreadPool(threads: 2)
        var scores = [Float](repeating: 0, count: 2 * PagedAttention.scoresPerPosition * maxContext)
        let layout = PagedAttention.Layout(
            numHeads: numHeads, numKVHeads: kvHeads, headDim: d, queriesPerKVHead: perGroup, blockSize: bs, scale: 0.125)
        PagedAttention.run(
            q: q, ldq: numHeads * d, out: &out, count: n, positions: positions, tokenRequest: tokenRequest,
            blockTables: tables, keyCache: kc, valueCache: vc, layout: layout, scores: &scores, maxContext: maxContext, pool: pool)
        for t in 0..<n {
            let r = Int(tokenRequest[t]), ctx = Int(positions[t]) + 1
            for h in 0..<numHeads {
                let kvh = h / perGroup
                let keys = (0..<ctx).map { Array(kAll[r][$0][(kvh * d)..<((kvh + 1) * d)]) }
                let values = (0..<ctx).map { Array(vAll[r][$0][(kvh * d)..<((kvh + 1) * d)]) }
                let qv = Array(q[((t * numHeads + h) * d)..<((t * numHeads + h + 1) * d)])
                let ref = ReferenceKernels.attention(q: qv, keys: keys, values: values, scale: 0.125)
                XCTAssertLessThan(
                    maxAbsDiff(Array(out[((t * numHeads + h) * d)..<((t * numHeads + h + 1) * d)]), ref), 1e-5,
                    "head size \(d), block size \(bs), \(numHeads) heads, token \(t), head \(h)")
            }
        }
    }
}
