/// A growable, 64-byte aligned buffer of `T` for kernel scratch and KV caches.
///
/// Sized once and grown only when a bigger batch appears (`reserve`), so the forward pass allocates
/// nothing per token. Contents are not preserved across growth. Zero-initialized on (re)allocation.
public final class AlignedBuffer<T>: @unchecked Sendable {
    public private(set) var pointer: UnsafeMutablePointer<T>
    public private(set) var capacity: Int

    public init(capacity: Int = 0) {
        self.capacity = max(capacity, 1)
        self.pointer = AlignedBuffer.allocate(self.capacity)
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }

    /// Ensures room for `count` elements; reallocates (contents lost, zeroed) only when growing.
    @inline(__always)
    public func reserve(_ count: Int) {
        if count > capacity { grow(count) }
    }

    private func grow(_ count: Int) {
        UnsafeMutableRawPointer(pointer).deallocate()
        capacity = count
        pointer = AlignedBuffer.allocate(count)
    }

    private static func allocate(_ count: Int) -> UnsafeMutablePointer<T> {
        let bytes = max(count * MemoryLayout<T>.stride, 64)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        return raw.bindMemory(to: T.self, capacity: count)
    }
}
