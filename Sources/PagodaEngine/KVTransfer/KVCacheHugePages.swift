#if canImport(Glibc)
import Glibc
#endif

extension KVBlockStorage {
    /// Asks the kernel to back every layer's K and V cache with transparent huge pages (needs
    /// /sys/kernel/mm/transparent_hugepage/enabled at `madvise` or `always`; memory touched before this stays
    /// in small pages). A same-host copy (`KVSameHostCopy`) pins the producer's pages one by one: with 2 MiB
    /// pages instead of 4 KiB ones `process_vm_readv` measured about as fast as memcpy here, against about half
    /// of it. Returns false when the kernel refused (the cache works either way).
    @discardableResult
    func adviseHugePages() -> Bool {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let bytes = kvNumBlocks * kvBlockFloats * 4
        var ok = true
        for layer in 0..<kvNumLayers {
            for value in [false, true] {
                let start = UInt(bitPattern: kvBlockPointer(layer: layer, block: 0, value: value))
                let first = (start + UInt(page) - 1) / UInt(page) * UInt(page)
                let end = (start + UInt(bytes)) / UInt(page) * UInt(page)
                guard end > first, let p = UnsafeMutableRawPointer(bitPattern: first) else { continue }
                if madvise(p, Int(end - first), Int32(MADV_HUGEPAGE)) != 0 { ok = false }
            }
        }
        return ok
    }
}
