import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Same-host KV reads by cross-memory attach (the CMA transport of UCX, which NIXL uses within a node): when
/// consumer and producer run under one kernel in one PID namespace, the producer's read reply offers its
/// process id and cache addresses, and the consumer copies the blocks straight out of the producer's memory
/// with `process_vm_readv` — one copy, where the TCP stream costs two plus the system calls. The producer
/// keeps the blocks claimed until the consumer reports the copy done. The kernel allows the copy only to a
/// process that may ptrace the producer (same user, no stricter Yama setting); when it refuses, the consumer
/// says so and the bytes come over the TCP stream as usual.
enum KVSameHostCopy {
    /// The kernel boot and PID namespace of a process: equal on both sides means one host, one PID space.
    struct Identity: Codable, Equatable {
        var bootId: String
        var pidNamespace: String
    }

    /// This process's identity (nil when /proc does not tell).
    static let local: Identity? = {
        guard let boot = try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8),
            let ns = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/pid")
        else { return nil }
        return Identity(bootId: boot.trimmingCharacters(in: .whitespacesAndNewlines), pidNamespace: ns)
    }()

    /// The producer's offer: its process id and its cache layout (per layer the address of block 0 of the
    /// K and of the V cache; blocks follow at `blockFloats` floats each).
    struct Offer: Codable, Equatable {
        var pid: Int32
        var bases: [UInt64]
        var blockFloats: Int
        var headStart: Int
        var headsLocal: Int
    }

    /// The consumer's answer to an offer: true when it copied every byte (the read is over), false when the
    /// producer must stream them.
    struct Done: Codable {
        var copied: Bool
    }

    static func offer(_ storage: KVBlockStorage) -> Offer {
        var bases: [UInt64] = []
        bases.reserveCapacity(2 * storage.kvNumLayers)
        for layer in 0..<storage.kvNumLayers {
            for value in [false, true] {
                bases.append(UInt64(UInt(bitPattern: storage.kvBlockPointer(layer: layer, block: 0, value: value))))
            }
        }
        return Offer(
            pid: getpid(), bases: bases, blockFloats: storage.kvBlockFloats, headStart: storage.kvHeadStart,
            headsLocal: storage.kvHeadsLocal)
    }

    private typealias ProcessVMReadv =
        @convention(c) (
            pid_t, UnsafePointer<iovec>?, UInt, UnsafePointer<iovec>?, UInt, UInt
        ) -> Int

    private static let logger = Logger(label: "pagoda.kv-transfer")
    private static let logLock = NSLock()
    nonisolated(unsafe) private static var loggedSuccess = false
    nonisolated(unsafe) private static var loggedFailure = false

    /// Logs the first same-host copy that worked and the first the kernel refused (then the stream is used).
    static func note(_ error: Error?) {
        logLock.lock()
        defer { logLock.unlock() }
        if let error {
            guard !loggedFailure else { return }
            loggedFailure = true
            logger.warning("KV of a producer on this host cannot be copied out of its memory (\(error)); streaming it over TCP")
        } else {
            guard !loggedSuccess else { return }
            loggedSuccess = true
            logger.info("KV of producers on this host is copied out of their memory (process_vm_readv), not streamed")
        }
    }

    /// glibc's `process_vm_readv` (Swift's Glibc module does not declare it).
    private static let processVMReadv: ProcessVMReadv? = {
        guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "process_vm_readv") else { return nil }
        return unsafeBitCast(sym, to: ProcessVMReadv.self)
    }()

    /// Copies the heads `heads` of `layers` of the producer's `remoteBlockIds` into `localBlockIds` of
    /// `storage`. Returns the bytes copied; throws when the kernel refuses or the offer does not fit.
    ///
    /// The kernel pins the producer's pages once per remote segment, so the plan (`KVCopyPlan`) visits the
    /// blocks in the producer's address order, where adjacent ones merge into one segment; the local side
    /// takes each token's heads straight into place (a consumer holding more heads than this rank gives):
    /// `process_vm_readv` scatters on both sides, so no staging copy is needed. (A copy staged through an
    /// L2-sized scratch, one kernel copy per run of blocks and the heads scattered from cache, measured
    /// 10-20 % slower for a TP 2 producer on a machine with one of two CPUs busy: Benchmarks/pd-disagg/RESULTS.md.)
    static func read(
        _ offer: Offer, into storage: KVBlockStorage, remoteBlockIds: [Int], localBlockIds: [Int], heads: Range<Int>,
        layers: Range<Int>? = nil
    ) throws -> Int {
        guard let readv = processVMReadv else { throw KVTransferSocket.Failure(description: "process_vm_readv is not available") }
        if let why = mismatch(offer, storage: storage, remoteBlockIds: remoteBlockIds, heads: heads) {
            throw KVTransferSocket.Failure(description: "the producer's same-host offer does not fit: \(why)")
        }
        let layers = layers ?? 0..<storage.kvNumLayers
        let plan = KVCopyPlan(
            source: RemoteKVLayout(offer, like: storage), target: storage, sourceBlockIds: remoteBlockIds, targetBlockIds: localBlockIds,
            heads: heads)
        let liov = UnsafeMutablePointer<iovec>.allocate(capacity: max(1, plan.maxTargetSegments))
        let riov = UnsafeMutablePointer<iovec>.allocate(capacity: max(1, plan.maxSourceSegments))
        let sink = UnsafeMutableRawPointer.allocate(byteCount: KVCopyPlan.maxGapBytes, alignment: 64)
        defer { liov.deallocate(); riov.deallocate(); sink.deallocate() }
        for layer in layers {
            for value in [false, true] {
                let (nr, nl) = plan.segments(layer: layer, value: value, source: riov, target: liov, sink: sink)
                var (li, ri) = (0, 0)
                while li < nl && ri < nr {
                    let max = KVTransferSocket.maxSegmentsPerCall
                    let r = readv(offer.pid, liov + li, UInt(min(nl - li, max)), riov + ri, UInt(min(nr - ri, max)), 0)
                    guard r > 0 else { throw KVTransferSocket.Failure(description: KVTransferSocket.errnoText("process_vm_readv")) }
                    advance(liov, &li, nl, by: r)
                    advance(riov, &ri, nr, by: r)
                }
                guard li == nl && ri == nr else {
                    throw KVTransferSocket.Failure(description: "the producer's blocks and ours differ in size")
                }
            }
        }
        return 2 * layers.count * plan.target.bytesPerLayerHalf
    }

    /// Why `offer` cannot describe where the producer keeps `heads` of `remoteBlockIds` in a cache of
    /// `storage`'s layout (nil: it can). Checked before any address is computed from it: an offer is a
    /// peer's bytes, so counts are compared without overflow and every address must lie in the address space.
    static func mismatch(_ offer: Offer, storage: KVBlockStorage, remoteBlockIds: [Int], heads: Range<Int>) -> String? {
        guard offer.bases.count == 2 * storage.kvNumLayers else {
            return "\(offer.bases.count) cache addresses for \(storage.kvNumLayers) layers"
        }
        guard offer.headsLocal > 0, offer.headsLocal <= 1 << 20, offer.headStart >= 0, heads.lowerBound >= offer.headStart,
            heads.count <= offer.headsLocal - (heads.lowerBound - offer.headStart)
        else { return "heads \(heads) are not among the producer's \(offer.headsLocal) from \(offer.headStart)" }
        let (perHeadRow, o1) = offer.headsLocal.multipliedReportingOverflow(by: storage.kvBlockSize)
        let (floats, o2) = perHeadRow.multipliedReportingOverflow(by: storage.kvHeadDim)
        guard !o1, !o2, offer.blockFloats == floats else { return "blocks of \(offer.blockFloats) floats" }
        guard let last = remoteBlockIds.max(), last < 1 << 40, remoteBlockIds.allSatisfy({ $0 >= 0 }) else {
            return "block ids \(remoteBlockIds.prefix(8)) out of range"
        }
        let (span, o3) = (last + 1).multipliedReportingOverflow(by: floats * 4)
        guard !o3 else { return "block \(last) lies outside the address space" }
        for base in offer.bases where base == 0 || base > UInt64(UInt.max) - UInt64(span) {
            return "cache address \(base) with \(span) bytes of blocks"
        }
        return nil
    }

    /// Moves `i` (and the entry it points at) `bytes` forward through the `n` segments of `iov`.
    private static func advance(_ iov: UnsafeMutablePointer<iovec>, _ i: inout Int, _ n: Int, by bytes: Int) {
        var left = bytes
        while i < n && left >= iov[i].iov_len {
            left -= iov[i].iov_len
            i += 1
        }
        if left > 0 && i < n {
            iov[i].iov_base = iov[i].iov_base! + left
            iov[i].iov_len -= left
        }
    }
}

/// The producer's cache as an offer describes it: addresses in the producer's memory, never dereferenced
/// here (only handed to `process_vm_readv` through `KVBlockSlices`).
private final class RemoteKVLayout: KVBlockStorage {
    let offer: KVSameHostCopy.Offer
    let kvNumLayers: Int, kvBlockSize: Int, kvHeadDim: Int
    init(_ offer: KVSameHostCopy.Offer, like local: KVBlockStorage) {
        self.offer = offer
        kvNumLayers = local.kvNumLayers; kvBlockSize = local.kvBlockSize; kvHeadDim = local.kvHeadDim
    }
    var kvBlockFloats: Int { offer.blockFloats }
    var kvNumBlocks: Int { Int.max }
    var kvHeadsLocal: Int { offer.headsLocal }
    var kvHeadStart: Int { offer.headStart }
    func kvHeadRange(tpRank: Int, tpSize: Int) -> Range<Int>? { nil }
    func kvBlockPointer(layer: Int, block: Int, value: Bool) -> UnsafeMutablePointer<Float> {
        let base = UInt(offer.bases[2 * layer + (value ? 1 : 0)])
        return UnsafeMutablePointer(bitPattern: base + UInt(block * offer.blockFloats * 4))!
    }
}
