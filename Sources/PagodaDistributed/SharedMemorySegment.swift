import CPagodaSystem
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One POSIX shared-memory segment (`shm_open` + `mmap`) mapped by every rank of a group on one host.
/// Rank 0 creates it; the others open it once rank 0 has published its size and magic word.
/// The name is unlinked as soon as every rank has mapped it (see `SharedMemoryCommunicator`), so a crash
/// after start-up leaks nothing; `unlink(name:)` removes a leftover from a crash before that.
final class SharedMemorySegment {
    let name: String
    let base: UnsafeMutableRawPointer
    let size: Int
    private(set) var unlinked = false

    /// Offset 0 holds the magic word; rank 0 stores it last, once the segment is initialised.
    static let magic: UInt32 = 0x5047_4431  // "PGD1"

    init(create name: String, size: Int, rank: Int) throws {
        self.name = name
        self.size = size
        shm_unlink(name)
        let fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0o600)
        guard fd >= 0 else { throw CommunicatorError.setupFailed(rank: rank, detail: "shm_open(\(name)): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard ftruncate(fd, off_t(size)) == 0 else {
            let e = errno
            shm_unlink(name)
            throw CommunicatorError.setupFailed(rank: rank, detail: "ftruncate(\(name), \(size)): \(String(cString: strerror(e)))")
        }
        guard let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            let e = errno
            shm_unlink(name)
            throw CommunicatorError.setupFailed(rank: rank, detail: "mmap(\(name)): \(String(cString: strerror(e)))")
        }
        base = p
    }

    /// Opens the segment rank 0 created, waiting for it up to `timeout` seconds.
    init(open name: String, size: Int, rank: Int, timeout: Double) throws {
        self.name = name
        self.size = size
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let fd = shm_open(name, O_RDWR, 0)
            if fd >= 0 {
                var st = stat()
                if fstat(fd, &st) == 0 && Int(st.st_size) == size,
                    let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED
                {
                    close(fd)
                    if pagoda_shm_load_u32(p.assumingMemoryBound(to: UInt32.self)) == Self.magic {
                        base = p
                        return
                    }
                    munmap(p, size)
                } else {
                    close(fd)
                }
            }
            if Date() > deadline {
                throw CommunicatorError.setupFailed(rank: rank, detail: "shared memory segment \(name) did not appear within \(timeout) s (is rank 0 running?)")
            }
            usleep(1000)
        }
    }

    func word(at offset: Int) -> UnsafeMutablePointer<UInt32> {
        (base + offset).assumingMemoryBound(to: UInt32.self)
    }

    func unlinkName() {
        if !unlinked { shm_unlink(name); unlinked = true }
    }

    /// Removes a leftover segment by name (after a crash before all ranks joined).
    static func unlink(name: String) { shm_unlink(name) }

    deinit { munmap(base, size) }
}
