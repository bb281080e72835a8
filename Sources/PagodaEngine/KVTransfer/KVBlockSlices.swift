#if canImport(Glibc)
import Glibc
#endif

/// Where the bytes of one KV read lie in a paged cache, as `iovec` lists for vectored socket I/O: the
/// producer sends straight from its blocks and the consumer receives straight into its own, with no
/// staging copy on either side.
///
/// The stream order (`KVBlockWire`): for each layer, the K then the V of every block in request order;
/// within a block, token by token, the heads [headStart, headStart + headCount) (global indices). When
/// those are all the heads the cache holds, a block is one contiguous run, and blocks adjacent in memory
/// merge into one segment.
struct KVBlockSlices {
    let storage: KVBlockStorage
    let blockIds: [Int]
    /// The first wanted head, relative to the heads this cache holds, and how many.
    let localHeadOffset: Int
    let headCount: Int
    /// Bytes per (layer, K or V): blocks × tokens × wanted heads × head size.
    let bytesPerLayerHalf: Int
    /// Segments of one (layer, K or V), before merging (the `iovec` capacity needed).
    let maxSegments: Int

    init(storage: KVBlockStorage, blockIds: [Int], headStart: Int, headCount: Int) {
        self.storage = storage
        self.blockIds = blockIds
        localHeadOffset = headStart - storage.kvHeadStart
        self.headCount = headCount
        bytesPerLayerHalf = blockIds.count * storage.kvBlockSize * headCount * storage.kvHeadDim * 4
        let whole = headStart == storage.kvHeadStart && headCount == storage.kvHeadsLocal
        maxSegments = whole ? blockIds.count : blockIds.count * storage.kvBlockSize
    }

    /// True when every head of the cache is wanted: a block is one run of bytes.
    var isWholeBlocks: Bool { localHeadOffset == 0 && headCount == storage.kvHeadsLocal }

    /// Fills `iov` with the segments of `layer`'s K (`value` false) or V, merging adjacent ones; returns their count.
    func segments(layer: Int, value: Bool, into iov: UnsafeMutablePointer<iovec>) -> Int {
        var n = 0
        for b in blockIds { append(block: b, layer: layer, value: value, to: iov, &n) }
        return n
    }

    /// Appends the segments of block `b` of `layer`'s K or V to the `n` of `iov`, merging adjacent ones.
    func append(block b: Int, layer: Int, value: Bool, to iov: UnsafeMutablePointer<iovec>, _ n: inout Int) {
        let block = storage.kvBlockPointer(layer: layer, block: b, value: value)
        if isWholeBlocks {
            Self.add(UnsafeMutableRawPointer(block), storage.kvBlockFloats * 4, to: iov, &n)
        } else {
            let d = storage.kvHeadDim, heads = storage.kvHeadsLocal, run = headCount * d * 4
            for t in 0..<storage.kvBlockSize {
                Self.add(UnsafeMutableRawPointer(block + (t * heads + localHeadOffset) * d), run, to: iov, &n)
            }
        }
    }

    /// Appends `len` bytes at `p` to the `n` segments of `iov`, extending the last when `p` continues it.
    static func add(_ p: UnsafeMutableRawPointer, _ len: Int, to iov: UnsafeMutablePointer<iovec>, _ n: inout Int) {
        if n > 0, let base = iov[n - 1].iov_base, base + iov[n - 1].iov_len == p {
            iov[n - 1].iov_len += len
        } else {
            iov[n] = iovec(iov_base: p, iov_len: len)
            n += 1
        }
    }

    /// Copies `bytes` bytes from `staging` (the next bytes of one layer's K or V in wire order) into place,
    /// through the `n` segments of `iov` from segment `next` on; a segment only partly filled is advanced
    /// and stays `next`. A consumer that takes some of its heads from a rank receives them into a small
    /// buffer with large receives and scatters them from cache, instead of a kernel copy per token's heads.
    static func scatter(
        _ staging: UnsafeRawPointer, _ bytes: Int, to iov: UnsafeMutablePointer<iovec>, _ n: Int, from next: inout Int
    ) {
        var off = 0
        while off < bytes && next < n {
            let len = min(iov[next].iov_len, bytes - off)
            memcpy(iov[next].iov_base, staging + off, len)
            off += len
            if len == iov[next].iov_len {
                next += 1
            } else {
                iov[next].iov_base! += len
                iov[next].iov_len -= len
            }
        }
    }
}
