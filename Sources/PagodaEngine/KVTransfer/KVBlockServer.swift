import Foundation
import Logging
import PagodaDistributed

#if canImport(Glibc)
import Glibc
#endif

/// The producer side of the TCP connector: holds finished requests' blocks for their readers and serves
/// them over TCP (one read per request, a thread per connection). A consumer keeps its authenticated
/// connections open between reads (`KVConnectionPool`): a connection serves one read after another, and
/// is closed after `idleSeconds` without a request, on any I/O error, and at `shutdown`.
///
/// A request is readable from `hold` until it is read once (over one connection, or over several that each
/// read a range of layers) or its hold expires; either way it moves to
/// `finished` and the engine frees its blocks when `takeFinished` reports it. A block is freed only after
/// its read has ended, so a reader never gets blocks that were reused: a read of an unknown, already read
/// or expired request is answered with an error.
final class KVBlockServer: @unchecked Sendable {
    private struct Hold {
        var blockIds: Set<Int>
        var numBlocks: Int
        var deadline: Date
        /// Set by the read's first connection: how many connections read the request, which have not come yet,
        /// which are being served, and the layers already claimed (a read over several connections splits them).
        var connections: Int? = nil
        var connectionsLeft = 0
        var active = 0
        var claimedLayers: [Range<Int>] = []
        /// Bytes sent (or copied by the reader) so far over the read's connections.
        var sent = 0
    }

    let host: String
    let port: Int
    private let listener: Int32
    private let lock = NSLock()
    // Guarded by `lock`:
    private var holds: [String: Hold] = [:]
    private var finished: [String] = []
    /// Requests read or expired lately (a reader of one is refused at once instead of waiting for its hold).
    private var recentlyEnded: Set<String> = []
    private var recentlyEndedOrder: [String] = []
    private var stats = KVTransferStats()
    private var storage: KVBlockStorage?
    private var stopping = false
    private var sameHostReads = 0
    private var acceptThread: Thread?
    private let ioTimeoutSeconds: Double
    /// How long a connection waits for its reader's next request (longer than the reader keeps it idle,
    /// `KVConnectionPool.maxIdleSeconds`, so the reader normally lets go first).
    let idleSeconds: Double
    /// How long a read of a request not yet held waits for its hold (the engine hands it over a step later).
    private let holdGraceSeconds: Double
    /// Every reader proves it before its request is read (`PeerAuthentication`).
    private let secret: PeerSecret
    private let logger = Logger(label: "pagoda.kv-transfer")

    /// Binds `host:port` now (0: any free port), so `port` can be announced before the cache exists.
    init(
        host: String, port: Int, ioTimeoutSeconds: Double, secret: PeerSecret, holdGraceSeconds: Double = 5, idleSeconds: Double = 60
    ) throws {
        let (fd, bound) = try KVTransferSocket.listen(host: host, port: port)
        listener = fd
        self.port = bound
        self.host = host
        self.ioTimeoutSeconds = ioTimeoutSeconds
        self.holdGraceSeconds = holdGraceSeconds
        self.idleSeconds = idleSeconds
        self.secret = secret
    }

    /// Starts serving reads from `storage`.
    func start(storage: KVBlockStorage) {
        attach(storage: storage)
        let t = Thread { [self] in acceptLoop() }
        t.name = "pagoda-kv-server"
        lock.lock(); acceptThread = t; lock.unlock()
        t.start()
    }

    /// Serves reads from `storage` on connections handed to `serveRead` (`start` also accepts them).
    func attach(storage: KVBlockStorage) {
        lock.lock(); self.storage = storage; lock.unlock()
    }

    /// Holds `blockIds` of `requestId` for one reader for `timeoutSeconds`.
    func hold(_ requestId: String, blockIds: [Int], timeoutSeconds: Double) {
        lock.lock(); defer { lock.unlock() }
        holds[requestId] = Hold(blockIds: Set(blockIds), numBlocks: blockIds.count, deadline: Date() + timeoutSeconds)
    }

    /// Requests whose blocks may be freed (read, or hold expired) since the last call, and the read statistics.
    func takeFinished() -> ([String], KVTransferStats, blocksHeld: Int) {
        lock.lock(); defer { lock.unlock() }
        let now = Date()
        // Expired and no connection in flight (a read split over connections whose last never came expires too).
        for (id, h) in holds where h.active == 0 && h.deadline < now {
            holds[id] = nil
            ended(id)
            finished.append(id)
            stats.sendTimeouts += 1
            logger.warning("KV of request \(id) was not read within the transfer timeout; its blocks are freed")
        }
        defer { finished.removeAll(); stats = KVTransferStats() }
        return (finished, stats, holds.values.reduce(0) { $0 + $1.numBlocks })
    }

    /// Reads the consumer did by same-host copy (`KVSameHostCopy`) since start.
    var numSameHostReads: Int { lock.lock(); defer { lock.unlock() }; return sameHostReads }

    /// Remembers the last 1024 ended requests. Call with `lock` held.
    private func ended(_ id: String) {
        recentlyEnded.insert(id)
        recentlyEndedOrder.append(id)
        if recentlyEndedOrder.count > 1024 { recentlyEnded.remove(recentlyEndedOrder.removeFirst()) }
    }

    /// Stops accepting. The accept thread closes the listener itself when it sees the flag: closed here while
    /// that thread polls it, the descriptor's number could be reused by another socket of the process, which
    /// the old thread would then accept on.
    func shutdown() {
        lock.lock()
        stopping = true
        let running = acceptThread != nil
        lock.unlock()
        if running { Glibc.shutdown(listener, Int32(SHUT_RDWR)) } else { close(listener) }
    }

    private func acceptLoop() {
        while true {
            lock.lock(); let stop = stopping; lock.unlock()
            if stop {
                close(listener)
                return
            }
            var p = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 100) > 0 else { continue }
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else { continue }
            KVTransferSocket.tune(fd)
            let t = Thread { [self] in
                serve(fd); close(fd)
            }
            t.name = "pagoda-kv-send"
            t.start()
        }
    }

    /// Serves reads on `fd`, one after another, once the reader has proved the deployment's secret.
    private func serve(_ fd: Int32) {
        do { try PeerAuthentication.accept(fd: fd, secret: secret) } catch {
            logger.warning("refused a KV reader (\(KVTransferSocket.peerDescription(fd))): \(error)")
            return
        }
        while serveOnFreshThread(fd) && waitForNextRequest(fd) {}
    }

    /// `serveOne` on a thread started for this read; returns whether the connection is reusable. As
    /// before connections were kept open (a thread per connection then), each read's sender starts afresh,
    /// and the kernel places a new thread on the least busy CPU, where a long-lived one woken by its
    /// reader's request may be kept on the reader's CPU (the stream's two copies then take turns on one).
    /// A thread start costs tens of microseconds against milliseconds for a read.
    private func serveOnFreshThread(_ fd: Int32) -> Bool {
        let done = DispatchSemaphore(value: 0)
        let result = ReusableFlag()
        let t = Thread { [self] in
            result.value = serveOne(fd).reusable
            done.signal()
        }
        t.name = "pagoda-kv-send"
        t.start()
        done.wait()  // serveOne ends by its own deadlines
        return result.value
    }

    /// Waits until the reader sends its next request (true), or closes the connection, stays silent for
    /// `idleSeconds`, or the server stops (false).
    private func waitForNextRequest(_ fd: Int32) -> Bool {
        let idleDeadline = Date() + idleSeconds
        while true {
            lock.lock(); let stop = stopping; lock.unlock()
            if stop || Date() > idleDeadline { return false }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let n = poll(&p, 1, 100)
            if n < 0 && errno != EINTR { return false }
            if n > 0 {
                // Readable: a request, or the reader closed (the request's read then fails and ends the loop).
                lock.lock(); let stop = stopping; lock.unlock()
                return !stop
            }
        }
    }

    /// Reads one `KVBlockReadRequest` from an authenticated reader on `fd` and answers it: a refusal with
    /// the reason, or the blocks. Returns whether the blocks were sent (or copied by the reader).
    @discardableResult
    func serveRead(_ fd: Int32) -> Bool { serveOne(fd).served }

    /// `serveRead`, and whether the connection is fit for the reader's next request: every message and
    /// byte of this one was exchanged (a refusal counts: its reply was the whole answer).
    private func serveOne(_ fd: Int32) -> (served: Bool, reusable: Bool) {
        let deadline = Date() + ioTimeoutSeconds
        let req: KVBlockReadRequest
        do { req = try KVTransferSocket.receiveMessage(fd, KVBlockReadRequest.self, deadline: deadline) } catch {
            // A reader that closed its idle connection is not a failure worth a warning.
            if !KVTransferSocket.isClosedBeforeFirstByte(error) {
                logger.warning("KV read request from a consumer failed: \(error)")
            }
            return (false, false)
        }
        // The answer naming the blocks can reach the reader a step before the engine hands the hold over:
        // wait for it a little, unless the request was already read or expired.
        let grace = Date() + min(holdGraceSeconds, ioTimeoutSeconds)
        while true {
            lock.lock()
            let waiting = holds[req.requestId] == nil && !recentlyEnded.contains(req.requestId) && !stopping
            lock.unlock()
            if !waiting || Date() > grace { break }
            usleep(1000)
        }
        // Claim the hold: from here until the read ends its blocks cannot be freed.
        lock.lock()
        let storage = self.storage
        var refusal: String? = nil
        // The layers this connection reads (checked before any arithmetic: the request comes from the network).
        let start = req.layerStart
        let startValid = start >= 0 && start <= req.numLayers
        let count = startValid ? req.layerCount ?? (req.numLayers - start) : -1
        let layersValid = startValid && count >= 0 && count <= req.numLayers - start
        let layers = layersValid ? start..<(start + count) : 0..<0
        if var h = holds[req.requestId] {
            if storage == nil {
                refusal = "the producer's KV cache is not ready"
            } else if h.connections != nil && (h.connectionsLeft == 0 || h.connections != req.connections) {
                refusal = "request \(req.requestId) is already being read"
            } else if req.blockIds.count > h.numBlocks || !req.blockIds.allSatisfy(h.blockIds.contains) {
                refusal = "blocks \(req.blockIds) are not the ones held for request \(req.requestId)"
            } else if let s = storage, let why = Self.layoutMismatch(s, req) {
                refusal = why
            } else if !layersValid || req.connections < 1 || req.connections > 64 || (layers.isEmpty && req.numLayers > 0)
                || h.claimedLayers.contains(where: { $0.overlaps(layers) })
            {
                refusal =
                    "layers from \(start) (\(req.layerCount.map(String.init) ?? "all")) over \(req.connections) connections "
                    + "do not split the read of request \(req.requestId)"
            } else {
                if h.connections == nil { (h.connections, h.connectionsLeft) = (req.connections, req.connections) }
                h.connectionsLeft -= 1
                h.active += 1
                h.claimedLayers.append(layers)
                holds[req.requestId] = h
            }
        } else {
            refusal = "request \(req.requestId) is not held here (unknown, already read, or its blocks were freed after the timeout)"
        }
        lock.unlock()
        if let refusal {
            let answered = (try? KVTransferSocket.sendMessage(fd, KVBlockReadReply(ok: false, error: refusal), deadline: deadline)) != nil
            return (false, answered)
        }
        var sent = 0
        var served = false
        do {
            var reply = KVBlockReadReply(ok: true, error: nil)
            let offered = req.headCount > 0 && req.sameHost != nil && req.sameHost == KVSameHostCopy.local
            if offered { reply.sameHostCopy = KVSameHostCopy.offer(storage!) }
            try KVTransferSocket.sendMessage(fd, reply, deadline: deadline)
            if offered {
                // The reader copies the blocks out of this process; they stay claimed until it says it is done.
                let done = try KVTransferSocket.receiveMessage(fd, KVSameHostCopy.Done.self, deadline: deadline)
                if done.copied {
                    lock.lock(); sameHostReads += 1; lock.unlock()
                    sent = 2 * layers.count * req.blockIds.count * req.blockSize * req.headCount * req.headDim * 4
                }
            }
            // Straight from the paged cache: one vectored send per layer's K (and V) of all blocks.
            let slices = KVBlockSlices(storage: storage!, blockIds: req.blockIds, headStart: req.headStart, headCount: req.headCount)
            if req.headCount > 0 && sent == 0 {
                let iov = UnsafeMutablePointer<iovec>.allocate(capacity: max(1, slices.maxSegments))
                defer { iov.deallocate() }
                for layer in layers {
                    for value in [false, true] {
                        let n = slices.segments(layer: layer, value: value, into: iov)
                        try KVTransferSocket.sendv(fd, iov, n, deadline: deadline)
                        sent += slices.bytesPerLayerHalf
                    }
                }
            }
            served = true
        } catch {
            logger.warning("sending the KV of request \(req.requestId) failed after \(sent) bytes: \(error)")
        }
        lock.lock()
        if var h = holds[req.requestId] {
            h.active -= 1
            h.sent += sent
            if h.active == 0 && h.connectionsLeft == 0 {
                holds[req.requestId] = nil
                ended(req.requestId)
                finished.append(req.requestId)
                stats.sends += 1
                stats.sentBytes += h.sent
            } else {
                holds[req.requestId] = h
            }
        }
        lock.unlock()
        return (served, served)
    }

    /// Why `req` does not fit this cache's layout (nil: it fits).
    static func layoutMismatch(_ s: KVBlockStorage, _ req: KVBlockReadRequest) -> String? {
        if s.kvNumLayers != req.numLayers || s.kvBlockSize != req.blockSize || s.kvHeadDim != req.headDim {
            return "KV layout differs: the producer has \(s.kvNumLayers) layers, \(s.kvBlockSize) tokens per block, "
                + "heads of \(s.kvHeadDim) floats; the consumer \(req.numLayers), \(req.blockSize), \(req.headDim) "
                + "(same model and block size on both sides?)"
        }
        let mine = s.kvHeadStart..<(s.kvHeadStart + s.kvHeadsLocal)
        // Compared without adding the reader's numbers (a head count near Int.max must not overflow).
        if req.headCount < 0 || (req.headCount > 0 && !(mine.contains(req.headStart) && req.headCount <= mine.upperBound - req.headStart)) {
            return "KV heads from \(req.headStart), \(req.headCount) of them, are not cached here (this rank holds \(mine)); "
                + "do both sides run the same model with the tensor-parallel sizes the params name?"
        }
        return nil
    }
}

/// The outcome a read's thread hands back to its connection's thread (written before the semaphore is
/// signalled, read after the wait).
private final class ReusableFlag: @unchecked Sendable {
    var value = false
}
