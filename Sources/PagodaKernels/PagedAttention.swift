import CPagodaKernels
import Foundation

/// Attention over a block-paged KV cache (vLLM's PagedAttention, for the CPU).
///
/// Cache layout per layer (K and V alike): [numBlocks, blockSize, numKVHeads, headDim] float32, so the
/// slot `blockId × blockSize + offset` addresses one token's [numKVHeads, headDim] row. Query token t
/// of request r (position p) attends to positions 0...p of r, read through r's block table: causal
/// within a prefill chunk and over the cached prefix alike. GQA: query head h reads KV head
/// h / queriesPerKVHead.
public enum PagedAttention {
    /// Writes this step's K and V rows ([count, numKVHeads × headDim]) into their cache slots.
    /// Negative slots (padding) are skipped.
    public static func writeKV(
        key: UnsafePointer<Float>, value: UnsafePointer<Float>, ldKey: Int, ldValue: Int,
        slotMapping: UnsafePointer<Int32>, count: Int, keyCache: UnsafeMutablePointer<Float>,
        valueCache: UnsafeMutablePointer<Float>, rowSize: Int
    ) {
        for t in 0..<count {
            let slot = Int(slotMapping[t])
            if slot < 0 { continue }
            (keyCache + slot * rowSize).update(from: key + t * ldKey, count: rowSize)
            (valueCache + slot * rowSize).update(from: value + t * ldValue, count: rowSize)
        }
    }

    /// The shape and cache of one layer's attention call.
    public struct Layout {
        public var numHeads: Int
        public var numKVHeads: Int
        public var headDim: Int
        public var queriesPerKVHead: Int
        public var blockSize: Int
        public var scale: Float

        public init(numHeads: Int, numKVHeads: Int, headDim: Int, queriesPerKVHead: Int, blockSize: Int, scale: Float) {
            self.numHeads = numHeads
            self.numKVHeads = numKVHeads
            self.headDim = headDim
            self.queriesPerKVHead = queriesPerKVHead
            self.blockSize = blockSize
            self.scale = scale
        }
    }

    /// Floats of `scores` scratch `run` needs per pool thread and position of context.
    public static let scoresPerPosition = 4

    /// out[t, h·headDim ..< (h+1)·headDim] = softmax(q·Kᵀ·scale) · V for every token and head.
    /// - q: [count, ldq], head h at h·headDim. out: [count, numHeads × headDim].
    /// - tokenRequest: [count] request index of each token; positions: [count].
    /// - scores: scratch of at least `pool.threads × scoresPerPosition × maxContext` floats.
    /// Work goes over the pool by (token, KV head): the query heads of one KV head are computed together (`pagoda_attend_heads`).
    public static func run(
        q: UnsafePointer<Float>, ldq: Int, out: UnsafeMutablePointer<Float>, count: Int,
        positions: UnsafePointer<Int32>, tokenRequest: UnsafePointer<Int32>, blockTables: [[Int32]],
        keyCache: UnsafePointer<Float>, valueCache: UnsafePointer<Float>, layout: Layout,
        scores: UnsafeMutablePointer<Float>, maxContext: Int, pool: ThreadPool
    ) {
        let perGroup = layout.queriesPerKVHead
        let groups = (layout.numHeads + perGroup - 1) / perGroup
        let units = count * groups
        let workers = min(pool.threads, units)
        let d = layout.headDim
        pool.parallelFor(workers) { w in
            let s = scores + w * scoresPerPosition * maxContext
            var unit = w
            while unit < units {
                let t = unit / groups, g = unit % groups
                let h0 = g * perGroup, heads = min(layout.numHeads, h0 + perGroup) - h0
                blockTables[Int(tokenRequest[t])].withUnsafeBufferPointer { table in
                    pagoda_attend_heads(
                        q + t * ldq + h0 * d, out + (t * layout.numHeads + h0) * d, Int64(heads), Int64(positions[t]) + 1,
                        table.baseAddress!, keyCache + g * d, valueCache + g * d, Int64(layout.numKVHeads * d),
                        Int64(layout.blockSize), Int64(d), layout.scale, s)
                }
                unit += workers
            }
        }
    }
}
