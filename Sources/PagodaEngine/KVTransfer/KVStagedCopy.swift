#if canImport(Glibc)
import Glibc
#endif

/// A same-host copy for a consumer that takes some of the heads of each token from a producer rank
/// (re-slicing: a TP 2 producer read into one consumer rank), done in cache-sized chunks: the kernel copies
/// a run of the producer's blocks (short gaps read through, as `KVCopyPlan` does) into a small scratch
/// buffer in one piece, and each token's heads are then scattered into place from that buffer while it is
/// still in L2. Copying straight into place makes the kernel copy one token's heads (256 bytes for
/// Qwen2.5-0.5B at TP 2) per segment from memory; this way the kernel copies large runs and the small
/// copies read cache-hot bytes.
///
/// Invariant: a chunk holds whole source blocks, at most `scratchBytes` bytes with its gaps; every block
/// of the plan is in exactly one chunk, with its offset in the scratch.
struct KVStagedCopy {
    let plan: KVCopyPlan
    /// The scratch size: the kernel's copy of a chunk and its scatter stay within one core's L2.
    static let scratchBytes = 256 << 10

    /// One chunk: the source segments (runs of blocks with their gaps) and, per block, where it lands in
    /// the scratch and which target block it fills.
    private struct Chunk {
        var segments: [iovec] = []
        var bytes = 0
        var blocks: [(offset: Int, target: Int)] = []
    }

    /// Whether the plan's source blocks are whole runs of bytes that fit the scratch and its target takes
    /// part of each token (the case this copy is for).
    static func applies(to plan: KVCopyPlan) -> Bool {
        plan.source.isWholeBlocks && !plan.target.isWholeBlocks && plan.source.storage.kvBlockFloats * 4 <= scratchBytes
    }

    /// Copies `layer`'s K (`value` false) or V of the plan's blocks out of process `pid` with `readv`
    /// (`process_vm_readv`), through `scratch` (`scratchBytes` bytes). Throws when the kernel refuses.
    func copy(
        layer: Int, value: Bool, pid: pid_t, scratch: UnsafeMutableRawPointer,
        readv: (pid_t, UnsafePointer<iovec>, UInt, UnsafePointer<iovec>, UInt) -> Int
    ) throws {
        let blockBytes = plan.source.storage.kvBlockFloats * 4
        precondition(blockBytes <= Self.scratchBytes, "a KV block larger than the staging scratch (see `applies`)")
        var chunk = Chunk()
        for (s, t) in zip(plan.source.blockIds, plan.target.blockIds) {
            let p = UnsafeMutableRawPointer(plan.source.storage.kvBlockPointer(layer: layer, block: s, value: value))
            var gap = -1  // -1: not adjacent to the chunk's last run (a new segment)
            if let last = chunk.segments.last, let base = last.iov_base {
                let g = p - (base + last.iov_len)
                if g >= 0 && g <= KVCopyPlan.maxGapBytes { gap = g }
            }
            if chunk.bytes + max(0, gap) + blockBytes > Self.scratchBytes {
                try flush(&chunk, layer: layer, value: value, pid: pid, scratch: scratch, readv: readv)
                gap = -1
            }
            if gap >= 0 {
                chunk.segments[chunk.segments.count - 1].iov_len += gap + blockBytes
                chunk.bytes += gap
            } else {
                chunk.segments.append(iovec(iov_base: p, iov_len: blockBytes))
            }
            chunk.blocks.append((chunk.bytes, t))
            chunk.bytes += blockBytes
        }
        try flush(&chunk, layer: layer, value: value, pid: pid, scratch: scratch, readv: readv)
    }

    /// Reads `chunk` into the scratch, scatters its blocks' tokens into place and empties it.
    private func flush(
        _ chunk: inout Chunk, layer: Int, value: Bool, pid: pid_t, scratch: UnsafeMutableRawPointer,
        readv: (pid_t, UnsafePointer<iovec>, UInt, UnsafePointer<iovec>, UInt) -> Int
    ) throws {
        guard chunk.bytes > 0 else { return }
        var done = 0
        var first = 0
        while done < chunk.bytes {
            var local = iovec(iov_base: scratch + done, iov_len: chunk.bytes - done)
            let r = chunk.segments.withUnsafeBufferPointer { segs in
                readv(pid, &local, 1, segs.baseAddress! + first, UInt(min(segs.count - first, KVTransferSocket.maxSegmentsPerCall)))
            }
            guard r > 0 else { throw KVTransferSocket.Failure(description: KVTransferSocket.errnoText("process_vm_readv")) }
            done += r
            // Past the segments read whole; a partly read one continues where the kernel stopped.
            var left = r
            while first < chunk.segments.count && left >= chunk.segments[first].iov_len {
                left -= chunk.segments[first].iov_len
                first += 1
            }
            if left > 0 {
                chunk.segments[first].iov_base! += left
                chunk.segments[first].iov_len -= left
            }
        }
        let target = plan.target
        let d = target.storage.kvHeadDim, heads = target.storage.kvHeadsLocal, run = target.headCount * d * 4
        for (offset, t) in chunk.blocks {
            let block = target.storage.kvBlockPointer(layer: layer, block: t, value: value) + target.localHeadOffset * d
            for token in 0..<target.storage.kvBlockSize {
                memcpy(block + token * heads * d, scratch + offset + token * run, run)
            }
        }
        chunk.segments.removeAll(keepingCapacity: true)
        chunk.blocks.removeAll(keepingCapacity: true)
        chunk.bytes = 0
    }
}
