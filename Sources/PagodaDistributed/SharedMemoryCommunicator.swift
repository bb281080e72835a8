import CPagodaSystem
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Collectives between ranks on one host through one shared-memory segment per group.
///
/// Segment layout (every field on its own 64-byte line; data regions 64-byte aligned):
/// ```
/// line 0                     magic, worldSize, slotBytes, mailboxBytes
/// line 1 + r                 arrive[r]: epoch counter (u32) + waiter count (u32) of rank r   (barriers)
/// line 1 + N + r             pid[r]
/// line 1 + 2N + 2(s·N+d)     posted[s→d], consumed[s→d]: mailbox counters (u32 + waiters)
/// data                       slot[b][r], b ∈ {0,1}, r < N: slotBytes each (double-buffered by call parity)
/// mailboxes                  mailbox[s→d]: mailboxBytes each (send/recv)
/// ```
/// Collectives move data through the slots in chunks of at most `slotBytes`, so a 16 MiB all-reduce works
/// with a 1 MiB segment per rank. Consecutive collectives alternate between the two slot sets, so one
/// barrier per chunk suffices: a rank cannot overwrite set b before every rank passed the barrier of the
/// following collective, which it reaches only after reading set b.
///
/// Waiting spins ~`spinCount` pauses, then sleeps on a futex (CPU-FACTS: pure spinning stalls for
/// milliseconds on a shared 2-core VM). While asleep it checks every 50 ms that all peers' pids are alive
/// and that the timeout has not passed, so a dead peer is a `CommunicatorError.peerDied` naming it,
/// never a hang.
public final class SharedMemoryCommunicator: Communicator {
    public let rank: Int
    public let worldSize: Int
    /// Bytes of one rank's slot: the largest chunk one collective step moves per rank.
    public let slotBytes: Int
    public let mailboxBytes: Int
    public var timeoutSeconds: Double
    public var spinCount: Int
    /// One mailbox: a send of that size returns once it is posted, without the receiver.
    public var allToAllChunkFloats: Int { mailboxBytes / 4 }

    private let segment: SharedMemorySegment
    private let n: Int
    private var epoch: UInt32 = 0
    private var parity = 0
    private var sentCount: [UInt32]
    private var receivedCount: [UInt32]
    private var peerPids: [Int32]
    private let sources: UnsafeMutablePointer<UnsafePointer<Float>>

    private static let line = 64
    private var dataOffset: Int { Self.line * (1 + 2 * n + 2 * n * n) }

    static func segmentSize(worldSize n: Int, slotBytes: Int, mailboxBytes: Int) -> Int {
        line * (1 + 2 * n + 2 * n * n) + 2 * n * slotBytes + n * n * mailboxBytes
    }

    /// Joins group `name` (a POSIX shm name such as "/pagoda-1234-tp0") as `rank` of `worldSize`.
    /// Rank 0 creates the segment; the others wait for it up to `timeout` seconds. Returns once every rank
    /// has joined; the name is then unlinked (the mappings stay valid).
    public init(
        name: String, rank: Int, worldSize: Int, slotBytes: Int = 1 << 20, mailboxBytes: Int = 1 << 20,
        timeout: Double = 300, spinCount: Int = 2000
    ) throws {
        precondition(worldSize >= 1 && rank >= 0 && rank < worldSize)
        precondition(slotBytes % 64 == 0 && slotBytes >= 64 * 16 * worldSize && mailboxBytes % 64 == 0 && mailboxBytes >= 64)
        self.rank = rank
        self.worldSize = worldSize
        self.n = worldSize
        self.slotBytes = slotBytes
        self.mailboxBytes = mailboxBytes
        self.timeoutSeconds = timeout
        self.spinCount = spinCount
        self.sentCount = Array(repeating: 0, count: worldSize)
        self.receivedCount = Array(repeating: 0, count: worldSize)
        self.peerPids = Array(repeating: 0, count: worldSize)
        self.sources = .allocate(capacity: worldSize)
        let size = Self.segmentSize(worldSize: worldSize, slotBytes: slotBytes, mailboxBytes: mailboxBytes)
        if rank == 0 {
            segment = try SharedMemorySegment(create: name, size: size, rank: rank)
            let w = segment.word(at: 0)
            w[1] = UInt32(worldSize)
            w[2] = UInt32(slotBytes)
            w[3] = UInt32(mailboxBytes)
            pagoda_shm_store_u32(w, SharedMemorySegment.magic)
        } else {
            segment = try SharedMemorySegment(open: name, size: size, rank: rank, timeout: timeout)
            let w = segment.word(at: 0)
            guard w[1] == UInt32(worldSize), w[2] == UInt32(slotBytes), w[3] == UInt32(mailboxBytes) else {
                throw CommunicatorError.setupFailed(
                    rank: rank, detail: "segment \(name) was created for \(w[1]) ranks / slot \(w[2]) / mailbox \(w[3])")
            }
        }
        pagoda_shm_store_u32(pidWord(rank), UInt32(bitPattern: getpid()))
        // Join: a barrier; pids of ranks still starting are 0 and not checked.
        do {
            try barrier(operation: "join")
        } catch {
            if rank == 0 { segment.unlinkName() }
            throw error
        }
        for r in 0..<n { peerPids[r] = Int32(bitPattern: pagoda_shm_load_u32(pidWord(r))) }
        if rank == 0 { segment.unlinkName() }
    }

    deinit { sources.deallocate() }

    // MARK: Layout

    private func arriveWord(_ r: Int) -> UnsafeMutablePointer<UInt32> { segment.word(at: Self.line * (1 + r)) }
    private func pidWord(_ r: Int) -> UnsafeMutablePointer<UInt32> { segment.word(at: Self.line * (1 + n + r)) }
    private func postedWord(_ s: Int, _ d: Int) -> UnsafeMutablePointer<UInt32> {
        segment.word(at: Self.line * (1 + 2 * n + 2 * (s * n + d)))
    }
    private func consumedWord(_ s: Int, _ d: Int) -> UnsafeMutablePointer<UInt32> {
        segment.word(at: Self.line * (1 + 2 * n + 2 * (s * n + d) + 1))
    }
    private func slot(_ b: Int, _ r: Int) -> UnsafeMutablePointer<Float> {
        (segment.base + dataOffset + (b * n + r) * slotBytes).assumingMemoryBound(to: Float.self)
    }
    private func mailbox(_ s: Int, _ d: Int) -> UnsafeMutablePointer<Float> {
        (segment.base + dataOffset + 2 * n * slotBytes + (s * n + d) * mailboxBytes).assumingMemoryBound(to: Float.self)
    }
    private var slotFloats: Int { slotBytes / 4 }

    // MARK: Waiting

    /// Raises `word` to `value` and wakes sleepers if any (the waiter count sits in the next u32).
    @inline(__always)
    private func publish(_ word: UnsafeMutablePointer<UInt32>, _ value: UInt32) {
        pagoda_shm_store_u32(word, value)
        if pagoda_shm_load_u32(word + 1) != 0 { _ = pagoda_shm_futex_wake(word, Int32.max) }
    }

    /// Waits until `word` (a wrapping counter) reaches `target`. `peer` is the rank that raises it.
    @inline(__always)
    private func wait(_ word: UnsafeMutablePointer<UInt32>, reaches target: UInt32, peer: Int, operation: String) throws {
        @inline(__always) func reached(_ v: UInt32) -> Bool { Int32(bitPattern: v &- target) >= 0 }
        if reached(pagoda_shm_load_u32(word)) { return }
        for _ in 0..<spinCount {
            pagoda_shm_pause()
            if reached(pagoda_shm_load_u32(word)) { return }
        }
        try sleepWait(word, target: target, peer: peer, operation: operation)
    }

    private func sleepWait(_ word: UnsafeMutablePointer<UInt32>, target: UInt32, peer: Int, operation: String) throws {
        func reached(_ v: UInt32) -> Bool { Int32(bitPattern: v &- target) >= 0 }
        let start = Date()
        let waiters = word + 1
        while true {
            _ = pagoda_shm_add_u32(waiters, 1)
            let v = pagoda_shm_load_u32(word)
            if reached(v) {
                _ = pagoda_shm_add_u32(waiters, UInt32.max)
                return
            }
            _ = pagoda_shm_futex_wait(word, v, 50_000_000)
            _ = pagoda_shm_add_u32(waiters, UInt32.max)
            if reached(pagoda_shm_load_u32(word)) { return }
            try checkPeersAlive()
            let waited = Date().timeIntervalSince(start)
            if waited > timeoutSeconds {
                throw CommunicatorError.timeout(rank: peer, seconds: timeoutSeconds, operation: operation)
            }
        }
    }

    private func checkPeersAlive() throws {
        for r in 0..<n where r != rank {
            var pid = peerPids[r]
            if pid == 0 { pid = Int32(bitPattern: pagoda_shm_load_u32(pidWord(r))) }
            if pid != 0 && pagoda_process_alive(pid) == 0 {
                throw CommunicatorError.peerDied(rank: r, detail: "process \(pid) exited")
            }
        }
    }

    private func barrier(operation: String) throws {
        epoch &+= 1
        publish(arriveWord(rank), epoch)
        for r in 0..<n where r != rank {
            try wait(arriveWord(r), reaches: epoch, peer: r, operation: operation)
        }
    }

    /// The slot set for the next collective step; alternates so one barrier per step is enough.
    @inline(__always)
    private func nextParity() -> Int {
        parity ^= 1
        return parity
    }

    // MARK: Collectives

    public func barrier() throws { try barrier(operation: "barrier") }

    public func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        guard n > 1, count > 0 else { return }
        if count * 4 <= slotBytes && count <= 16 * 1024 {
            // Small (decode-sized): everyone publishes, then everyone sums all slots itself. One barrier.
            let b = nextParity()
            slot(b, rank).update(from: buffer, count: count)
            try barrier(operation: "allReduceSum")
            for q in 0..<n { sources[q] = UnsafePointer(slot(b, q)) }
            reduceSumInOrder(into: buffer, sources: sources, sourceCount: n, count: count)
            return
        }
        // Large: per chunk, reduce-scatter (rank r sums segment r into its own slot), then all-gather.
        var offset = 0
        while offset < count {
            let len = min(slotFloats, count - offset)
            let b = nextParity()
            slot(b, rank).update(from: buffer + offset, count: len)
            try barrier(operation: "allReduceSum")
            let (segStart, segLen) = segment(rank, of: len)
            if segLen > 0 {
                for q in 0..<n { sources[q] = UnsafePointer(slot(b, q) + segStart) }
                reduceSumInOrder(into: slot(b, rank) + segStart, sources: sources, sourceCount: n, count: segLen)
            }
            try barrier(operation: "allReduceSum")
            for q in 0..<n {
                let (s, l) = segment(q, of: len)
                if l > 0 { (buffer + offset + s).update(from: slot(b, q) + s, count: l) }
            }
            offset += len
        }
    }

    /// Segment `r` of a chunk of `len` floats, split in 16-float units so segments stay 64-byte aligned.
    @inline(__always)
    private func segment(_ r: Int, of len: Int) -> (start: Int, count: Int) {
        let units = (len + 15) / 16
        let start = min(len, (units * r / n) * 16)
        let end = min(len, (units * (r + 1) / n) * 16)
        return (start, end - start)
    }

    public func allGather(_ input: UnsafePointer<Float>, count: Int, into output: UnsafeMutablePointer<Float>) throws {
        guard n > 1 else { if UnsafePointer(output) != input { output.update(from: input, count: count) }; return }
        var offset = 0
        while offset < count {
            let len = min(slotFloats, count - offset)
            let b = nextParity()
            slot(b, rank).update(from: input + offset, count: len)
            try barrier(operation: "allGather")
            for q in 0..<n { (output + q * count + offset).update(from: slot(b, q), count: len) }
            offset += len
        }
    }

    public func reduceScatterSum(_ input: UnsafePointer<Float>, count: Int, into output: UnsafeMutablePointer<Float>) throws {
        guard n > 1 else { if UnsafePointer(output) != input { output.update(from: input, count: count) }; return }
        let piece = slotFloats / n / 16 * 16
        var offset = 0
        while offset < count {
            let len = min(piece, count - offset)
            let b = nextParity()
            let mine = slot(b, rank)
            for s in 0..<n { (mine + s * piece).update(from: input + s * count + offset, count: len) }
            try barrier(operation: "reduceScatterSum")
            for q in 0..<n { sources[q] = UnsafePointer(slot(b, q) + rank * piece) }
            reduceSumInOrder(into: output + offset, sources: sources, sourceCount: n, count: len)
            offset += len
        }
    }

    public func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws {
        guard root >= 0 && root < n else { throw CommunicatorError.invalidArgument("broadcast root \(root) in a group of \(n)") }
        guard n > 1 else { return }
        var offset = 0
        while offset < count {
            let len = min(slotFloats, count - offset)
            let b = nextParity()
            if rank == root { slot(b, root).update(from: buffer + offset, count: len) }
            try barrier(operation: "broadcast")
            if rank != root { (buffer + offset).update(from: slot(b, root), count: len) }
            offset += len
        }
    }

    /// Eager send through the (rank → peer) mailbox in chunks of `mailboxBytes`: returns once the last
    /// chunk is in the mailbox (the receiver may not have copied it yet).
    public func send(_ buffer: UnsafePointer<Float>, count: Int, to peer: Int) throws {
        guard peer >= 0 && peer < n && peer != rank else {
            throw CommunicatorError.invalidArgument("send to rank \(peer) from rank \(rank) of \(n)")
        }
        let box = mailbox(rank, peer)
        let cap = mailboxBytes / 4
        var offset = 0
        repeat {
            let len = min(cap, count - offset)
            // The mailbox is free once the receiver consumed everything posted so far.
            try wait(consumedWord(rank, peer), reaches: sentCount[peer], peer: peer, operation: "send")
            box.update(from: buffer + offset, count: len)
            sentCount[peer] &+= 1
            publish(postedWord(rank, peer), sentCount[peer])
            offset += len
        } while offset < count
    }

    public func recv(_ buffer: UnsafeMutablePointer<Float>, count: Int, from peer: Int) throws {
        guard peer >= 0 && peer < n && peer != rank else {
            throw CommunicatorError.invalidArgument("recv from rank \(peer) at rank \(rank) of \(n)")
        }
        let box = mailbox(peer, rank)
        let cap = mailboxBytes / 4
        var offset = 0
        repeat {
            let len = min(cap, count - offset)
            try wait(postedWord(peer, rank), reaches: receivedCount[peer] &+ 1, peer: peer, operation: "recv")
            (buffer + offset).update(from: box, count: len)
            receivedCount[peer] &+= 1
            publish(consumedWord(peer, rank), receivedCount[peer])
            offset += len
        } while offset < count
    }
}

extension SharedMemoryCommunicator {
    /// Removes the segment name of a group that may not have finished joining (after a crash at start-up).
    /// Harmless when the name is already gone.
    public static func removeSegment(name: String) { SharedMemorySegment.unlink(name: name) }
}
