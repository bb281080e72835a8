#if canImport(Glibc)
import Glibc
#endif
/// A growable, 64-byte aligned buffer of `T` for kernel scratch and KV caches.
///
/// Sized once and grown only when a bigger batch appears (`reserve`), so the forward pass allocates
/// nothing per token. Contents are not preserved across growth. Zero-initialized on (re)allocation.
///
/// Buffers of `mmapThreshold` bytes or more (KV caches) come from anonymous `mmap`: the kernel hands
/// out zero pages lazily, so a KV cache sized for the whole budget is resident only where blocks have
/// been written, instead of every byte being touched (and counted) at start-up. Those of 2 MiB or more are
/// mapped in whole 2 MiB pages at a 2 MiB-aligned address, so that transparent huge pages (asked for with
/// `madvise`, as the KV transfer does for the cache) can back every byte, not only the aligned middle.
public final class AlignedBuffer<T>: @unchecked Sendable {
    static var mmapThreshold: Int { 1 << 20 }
    /// The x86-64 huge page: mappings of at least this size start on it and fill whole ones.
    static var hugePageBytes: Int { 2 << 20 }

    public private(set) var pointer: UnsafeMutablePointer<T>
    public private(set) var capacity: Int

    /// A scratch buffer. Its sizes follow the scheduler's validated budgets, so failing to map one is an
    /// internal error (it stops the process); user-sized buffers use `init(exactCapacity:)`.
    public init(capacity: Int = 0) {
        self.capacity = max(capacity, 1)
        do { self.pointer = try AlignedBuffer.allocate(self.capacity) } catch { fatalError("\(error)") }
    }

    /// A buffer whose size comes from the user (the KV cache): throws `AlignedBufferError` when the
    /// memory cannot be had, instead of stopping the process.
    public init(exactCapacity capacity: Int) throws {
        self.capacity = max(capacity, 1)
        self.pointer = try AlignedBuffer.allocate(self.capacity)
    }

    /// A buffer of `capacity` elements that the kernel is asked to back with transparent huge pages (its whole
    /// 2 MiB pages, before any byte is touched; needs /sys/kernel/mm/transparent_hugepage/enabled at `madvise` or
    /// `always`, and the advice may be refused: the buffer works either way). For memory streamed once per step
    /// (weight copies): with 4 KiB pages the TLB misses every 4 KiB and the hardware prefetcher stops at each
    /// page boundary.
    public init(hugePagesCapacity capacity: Int) throws {
        self.capacity = max(capacity, 1)
        self.pointer = try AlignedBuffer.allocate(self.capacity, hugePages: true)
    }

    deinit { AlignedBuffer.free(pointer, capacity) }

    /// Ensures room for `count` elements; reallocates (contents lost, zeroed) only when growing.
    @inline(__always)
    public func reserve(_ count: Int) {
        if count > capacity { grow(count) }
    }

    private func grow(_ count: Int) {
        AlignedBuffer.free(pointer, capacity)
        capacity = count
        do { pointer = try AlignedBuffer.allocate(count) } catch { fatalError("\(error)") }
    }

    private static func allocate(_ count: Int, hugePages: Bool = false) throws -> UnsafeMutablePointer<T> {
        let (product, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<T>.stride)
        if overflow { throw AlignedBufferError.cannotMap(bytes: nil, reason: "\(count) elements overflow the address space") }
        let bytes = max(product, 64)
        if bytes >= mmapThreshold {
            let raw = try mapAnonymous(bytes)
            // Only the whole huge pages the buffer fills: a partly used tail page would cost its full 2 MiB.
            if hugePages && bytes >= hugePageBytes { _ = madvise(raw, bytes / hugePageBytes * hugePageBytes, MADV_HUGEPAGE) }
            return raw.bindMemory(to: T.self, capacity: count)
        }
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        return raw.bindMemory(to: T.self, capacity: count)
    }

    /// The bytes mapped for a buffer of `bytes`: whole huge pages from 2 MiB on.
    static func mappedBytes(_ bytes: Int) -> Int {
        let huge = hugePageBytes
        return bytes >= huge ? (bytes + huge - 1) / huge * huge : bytes
    }

    /// Anonymous zero memory of `mappedBytes(bytes)`, 2 MiB-aligned from 2 MiB on: maps one huge page more
    /// and unmaps the unaligned head and the tail.
    private static func mapAnonymous(_ bytes: Int) throws -> UnsafeMutableRawPointer {
        let length = mappedBytes(bytes)
        let slack = length >= hugePageBytes ? hugePageBytes : 0
        let raw = mmap(nil, length + slack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let raw, raw != MAP_FAILED else {
            throw AlignedBufferError.cannotMap(bytes: bytes, reason: String(cString: strerror(errno)))
        }
        guard slack > 0 else { return raw }
        let start = UInt(bitPattern: raw)
        let aligned = (start + UInt(slack) - 1) / UInt(slack) * UInt(slack)
        let head = Int(aligned - start)
        if head > 0 { munmap(raw, head) }
        if slack - head > 0 { munmap(raw + head + length, slack - head) }
        return raw + head
    }

    private static func free(_ pointer: UnsafeMutablePointer<T>, _ count: Int) {
        let bytes = max(count * MemoryLayout<T>.stride, 64)
        if bytes >= mmapThreshold {
            munmap(UnsafeMutableRawPointer(pointer), mappedBytes(bytes))
        } else {
            UnsafeMutableRawPointer(pointer).deallocate()
        }
    }
}

/// Memory for a buffer could not be had (the request exceeds what the system will map).
public enum AlignedBufferError: Error, CustomStringConvertible, Equatable {
    case cannotMap(bytes: Int?, reason: String)

    public var description: String {
        switch self {
        case .cannotMap(let bytes?, let reason): return "cannot allocate \(bytes) bytes: \(reason)"
        case .cannotMap(nil, let reason): return "cannot allocate: \(reason)"
        }
    }
}
