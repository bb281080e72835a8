import Foundation
import PagodaKernels

/// A paged KV cache in plain memory with a model's layout ([numBlocks, blockSize, kvHeadsLocal, headDim]
/// floats per layer for K and for V), holding one tensor-parallel rank's heads: what the KV transfer
/// benchmark and tests read and write in place of a loaded model's cache.
public final class KVBlockArena: KVBlockStorage {
    public let kvNumLayers: Int
    public let kvNumBlocks: Int
    public let kvBlockSize: Int
    public let kvHeadsLocal: Int
    public let kvHeadStart: Int
    public let kvHeadDim: Int
    /// The model's KV heads over all ranks.
    public let numKVHeads: Int
    private let buffer: AlignedBuffer<Float>
    private var base: UnsafeMutablePointer<Float> { buffer.pointer }

    /// The cache of rank `tpRank` of `tpSize` (heads split evenly; `tpSize` must divide `numKVHeads`).
    public init(numLayers: Int, numBlocks: Int, blockSize: Int, numKVHeads: Int, headDim: Int, tpRank: Int = 0, tpSize: Int = 1) {
        precondition(numKVHeads % tpSize == 0, "tpSize must divide numKVHeads")
        kvNumLayers = numLayers; kvNumBlocks = numBlocks; kvBlockSize = blockSize; kvHeadDim = headDim
        self.numKVHeads = numKVHeads
        kvHeadsLocal = numKVHeads / tpSize
        kvHeadStart = tpRank * kvHeadsLocal
        // Anonymous memory, zero and untouched until used, 2 MiB-aligned: as a model's KV cache (`AlignedBuffer`).
        buffer = AlignedBuffer(capacity: 2 * numLayers * numBlocks * blockSize * kvHeadsLocal * headDim)
    }

    public var kvBlockFloats: Int { kvBlockSize * kvHeadsLocal * kvHeadDim }

    public func kvBlockPointer(layer: Int, block: Int, value: Bool) -> UnsafeMutablePointer<Float> {
        precondition(layer >= 0 && layer < kvNumLayers && block >= 0 && block < kvNumBlocks, "KV block out of range")
        return base + ((2 * layer + (value ? 1 : 0)) * kvNumBlocks + block) * kvBlockFloats
    }

    public func kvHeadRange(tpRank: Int, tpSize: Int) -> Range<Int>? {
        guard tpSize >= 1, numKVHeads % tpSize == 0, tpRank >= 0, tpRank < tpSize else { return nil }
        let n = numKVHeads / tpSize
        return (tpRank * n)..<((tpRank + 1) * n)
    }

    /// The value a test pattern gives global head `head`, token `token` of `block`, float `i` of layer
    /// `layer`'s K or V (exact in float32).
    public static func pattern(layer: Int, block: Int, token: Int, head: Int, i: Int, value: Bool) -> Float {
        let x = (((layer * 7 + block) * 31 + token) * 17 + head) * 3 + i % 5 + (value ? 1 : 0)
        return Float(x & 0xFFFFF)
    }

    /// Sets every float of `blocks` to 0.
    public func zero(blocks: [Int]) {
        for layer in 0..<kvNumLayers {
            for value in [false, true] {
                for b in blocks { kvBlockPointer(layer: layer, block: b, value: value).update(repeating: 0, count: kvBlockFloats) }
            }
        }
    }

    /// Writes `pattern` into every float of `blocks` (global head indices).
    public func fillPattern(blocks: [Int]) {
        for layer in 0..<kvNumLayers {
            for value in [false, true] {
                for b in blocks {
                    let p = kvBlockPointer(layer: layer, block: b, value: value)
                    for t in 0..<kvBlockSize {
                        for h in 0..<kvHeadsLocal {
                            for i in 0..<kvHeadDim {
                                p[(t * kvHeadsLocal + h) * kvHeadDim + i] = Self.pattern(
                                    layer: layer, block: b, token: t, head: kvHeadStart + h, i: i, value: value)
                            }
                        }
                    }
                }
            }
        }
    }

    /// The first float of `blocks[k]` (this cache) that differs from the pattern of `sourceBlocks[k]`
    /// (described), or nil when all match.
    public func firstPatternMismatch(blocks: [Int], sourceBlocks: [Int]) -> String? {
        for layer in 0..<kvNumLayers {
            for value in [false, true] {
                for (b, src) in zip(blocks, sourceBlocks) {
                    let p = kvBlockPointer(layer: layer, block: b, value: value)
                    for t in 0..<kvBlockSize {
                        for h in 0..<kvHeadsLocal {
                            for i in 0..<kvHeadDim {
                                let want = Self.pattern(layer: layer, block: src, token: t, head: kvHeadStart + h, i: i, value: value)
                                let got = p[(t * kvHeadsLocal + h) * kvHeadDim + i]
                                if got != want {
                                    return
                                        "layer \(layer) \(value ? "V" : "K") block \(b) token \(t) head \(kvHeadStart + h) float \(i): \(got), expected \(want)"
                                }
                            }
                        }
                    }
                }
            }
        }
        return nil
    }
}
