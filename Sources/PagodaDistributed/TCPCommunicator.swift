import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Collectives between ranks on different hosts over a full mesh of TCP connections (TCP_NODELAY).
///
/// Rendezvous: rank 0 listens on `host:port`; every other rank connects to it, announcing its rank and
/// a listening port of its own; rank 0 answers with every rank's address, and rank j then connects to
/// every rank 0 < i < j. One connection per pair carries all traffic in call order.
///
/// Every collective is one or two "exchanges": a set of sends and receives, at most one of each per
/// peer, progressed together with poll() on non-blocking sockets so that two ranks sending each other
/// megabytes never deadlock. All-reduce is reduce-scatter (rank r sums segment r in rank order) then
/// all-gather, so results are bit-identical to the shared-memory transport and to a single-process sum.
/// A closed connection is `peerDied(rank:)`; no progress for `timeoutSeconds` is `timeout(rank:)`.
///
/// Every connection of the mesh starts with `PeerAuthentication` over the group's `PeerSecret` before any
/// hello: a peer that fails it is logged (stderr) and closed, and the listening rank keeps waiting for its
/// real peers until the rendezvous deadline.
public final class TCPCommunicator: Communicator {
    public let rank: Int
    public let worldSize: Int
    public var timeoutSeconds: Double

    private var fds: [Int32]
    private var sendPtr: [UnsafeRawPointer?]
    private var sendLeft: [Int]
    private var recvPtr: [UnsafeMutableRawPointer?]
    private var recvLeft: [Int]
    private var pollFds: [pollfd]
    private var pollPeers: [Int]
    private var scratch: UnsafeMutablePointer<Float>
    private var scratchCount = 0
    private let sources: UnsafeMutablePointer<UnsafePointer<Float>>
    /// Barrier tokens: [0, worldSize) received per peer, [worldSize] the one sent.
    private let tokens: UnsafeMutablePointer<UInt8>

    private static let magic: UInt32 = 0x5047_5443  // "PGTC"
    /// Proved on every connection of the mesh (set once by the public initializers).
    private var secret = PeerSecret.random()

    /// Joins the group whose rank 0 listens on `host:port`. Returns once the full mesh is connected.
    public convenience init(host: String, port: Int, rank: Int, worldSize: Int, secret: PeerSecret, timeout: Double = 300) throws {
        precondition(worldSize >= 1 && rank >= 0 && rank < worldSize)
        self.init(rank: rank, worldSize: worldSize, timeout: timeout)
        self.secret = secret
        let deadline = Date().addingTimeInterval(timeout)
        do {
            try connectMesh(host: host, port: port, deadline: deadline)
        } catch let f as TCPSocket.Failure {
            closeAll()
            throw CommunicatorError.setupFailed(rank: rank, detail: "TCP rendezvous at \(host):\(port): \(f.detail)")
        } catch {
            closeAll()
            throw error
        }
        for fd in fds where fd >= 0 { TCPSocket.setNonBlocking(fd) }
    }

    /// Rank 0 only: listen first on port 0 and pass the bound port to the other ranks (used by tests and the
    /// executor). `listener` must come from `TCPCommunicator.makeListener`.
    public convenience init(listener: (fd: Int32, port: Int), worldSize: Int, secret: PeerSecret, timeout: Double = 300) throws {
        self.init(rank: 0, worldSize: worldSize, timeout: timeout)
        self.secret = secret
        do {
            try acceptAsRoot(listener: listener.fd, deadline: Date().addingTimeInterval(timeout))
        } catch let f as TCPSocket.Failure {
            closeAll()
            throw CommunicatorError.setupFailed(rank: 0, detail: "TCP rendezvous on port \(listener.port): \(f.detail)")
        }
        for fd in fds where fd >= 0 { TCPSocket.setNonBlocking(fd) }
    }

    /// Peer sockets not yet connected and the per-peer progress state and scratch, sized for `worldSize`.
    private init(rank: Int, worldSize: Int, timeout: Double) {
        self.rank = rank
        self.worldSize = worldSize
        self.timeoutSeconds = timeout
        fds = Array(repeating: -1, count: worldSize)
        sendPtr = Array(repeating: nil, count: worldSize)
        sendLeft = Array(repeating: 0, count: worldSize)
        recvPtr = Array(repeating: nil, count: worldSize)
        recvLeft = Array(repeating: 0, count: worldSize)
        pollFds = []
        pollFds.reserveCapacity(worldSize)
        pollPeers = []
        pollPeers.reserveCapacity(worldSize)
        scratch = .allocate(capacity: 1)
        sources = .allocate(capacity: worldSize)
        tokens = .allocate(capacity: worldSize + 1)
        tokens.initialize(repeating: 0, count: worldSize + 1)
    }

    /// A rendezvous listener on host:port (0: a free port), for `init(listener:worldSize:)`.
    public static func makeListener(host: String, port: Int = 0) throws -> (fd: Int32, port: Int) {
        do { return try TCPSocket.listen(host: host, port: port) } catch let f as TCPSocket.Failure {
            throw CommunicatorError.setupFailed(rank: 0, detail: f.detail)
        }
    }

    deinit {
        closeAll()
        scratch.deallocate()
        sources.deallocate()
        tokens.deallocate()
    }

    private func closeAll() {
        for i in fds.indices where fds[i] >= 0 { close(fds[i]); fds[i] = -1 }
    }

    // MARK: Rendezvous

    private func connectMesh(host: String, port: Int, deadline: Date) throws {
        if rank == 0 {
            let (listener, _) = try TCPSocket.listen(host: host, port: port)
            defer { close(listener) }
            try acceptAsRoot(listener: listener, deadline: deadline)
            return
        }
        let root = try TCPSocket.connect(host: host, port: port, deadline: deadline)
        fds[0] = root
        try prove(root, to: "rank 0 at \(host):\(port)")
        // Listen on the interface that reaches rank 0, so peers on other hosts can reach us too.
        let myAddress = TCPSocket.dottedQuad(TCPSocket.localAddress(root))
        let (listener, myPort) = try TCPSocket.listen(host: myAddress, port: 0)
        defer { close(listener) }
        try TCPSocket.writeAll(root, [Self.magic, UInt32(rank), UInt32(worldSize), UInt32(myPort)])
        let table = try TCPSocket.readAll(root, words: 2 * worldSize, deadline: deadline)
        for i in 1..<rank {
            let fd = try TCPSocket.connect(host: TCPSocket.dottedQuad(table[2 * i]), port: Int(table[2 * i + 1]), deadline: deadline)
            fds[i] = fd
            try prove(fd, to: "rank \(i)")
            try TCPSocket.writeAll(fd, [Self.magic, UInt32(rank), UInt32(worldSize), 0])
        }
        for _ in (rank + 1)..<worldSize {
            let fd = try acceptAuthenticated(listener, deadline: deadline)
            let hello = try TCPSocket.readAll(fd, words: 4, deadline: deadline)
            guard hello[0] == Self.magic, Int(hello[2]) == worldSize, Int(hello[1]) > rank, Int(hello[1]) < worldSize,
                fds[Int(hello[1])] < 0
            else {
                close(fd)
                throw TCPSocket.Failure(detail: "bad hello \(hello) from a peer")
            }
            fds[Int(hello[1])] = fd
        }
    }

    private func acceptAsRoot(listener: Int32, deadline: Date) throws {
        var table = [UInt32](repeating: 0, count: 2 * worldSize)
        for _ in 1..<max(worldSize, 1) {
            let fd = try acceptAuthenticated(listener, deadline: deadline)
            let hello = try TCPSocket.readAll(fd, words: 4, deadline: deadline)
            let r = Int(hello[1])
            guard hello[0] == Self.magic, Int(hello[2]) == worldSize, r > 0, r < worldSize, fds[r] < 0 else {
                close(fd)
                throw TCPSocket.Failure(detail: "bad hello \(hello) (expected \(worldSize) ranks)")
            }
            fds[r] = fd
            table[2 * r] = TCPSocket.peerAddress(fd)
            table[2 * r + 1] = hello[3]
        }
        for r in 1..<max(worldSize, 1) { try TCPSocket.writeAll(fds[r], table) }
    }

    /// The next connection whose peer proves the secret; others are logged to stderr, closed, and skipped.
    private func acceptAuthenticated(_ listener: Int32, deadline: Date) throws -> Int32 {
        while true {
            let fd = try TCPSocket.accept(listener, deadline: deadline)
            do {
                try PeerAuthentication.accept(fd: fd, secret: secret)
                return fd
            } catch {
                let peer = TCPSocket.dottedQuad(TCPSocket.peerAddress(fd))
                fputs("pagoda: TCP rank \(rank) refused a connection from \(peer): \(error)\n", stderr)
                close(fd)
            }
        }
    }

    /// Proves the secret on a connection this rank opened.
    private func prove(_ fd: Int32, to whom: String) throws {
        do { try PeerAuthentication.connect(fd: fd, secret: secret) } catch {
            throw TCPSocket.Failure(detail: "authentication with \(whom) failed: \(error)")
        }
    }

    // MARK: Exchange engine

    private func postSend(_ peer: Int, _ p: UnsafeRawPointer, bytes: Int) {
        sendPtr[peer] = p
        sendLeft[peer] = bytes
    }
    private func postRecv(_ peer: Int, _ p: UnsafeMutableRawPointer, bytes: Int) {
        recvPtr[peer] = p
        recvLeft[peer] = bytes
    }

    /// Progresses every posted send and receive until all are complete.
    private func exchange(_ operation: String) throws {
        var lastProgress = Date()
        while true {
            pollFds.removeAll(keepingCapacity: true)
            pollPeers.removeAll(keepingCapacity: true)
            for p in 0..<worldSize where sendLeft[p] > 0 || recvLeft[p] > 0 {
                var ev: Int16 = 0
                if sendLeft[p] > 0 { ev |= Int16(POLLOUT) }
                if recvLeft[p] > 0 { ev |= Int16(POLLIN) }
                pollFds.append(pollfd(fd: fds[p], events: ev, revents: 0))
                pollPeers.append(p)
            }
            if pollFds.isEmpty { return }
            let ready = poll(&pollFds, nfds_t(pollFds.count), 100)
            if ready < 0 && errno != EINTR {
                throw CommunicatorError.setupFailed(rank: rank, detail: TCPSocket.errnoText("poll"))
            }
            var progressed = false
            for k in 0..<pollFds.count where pollFds[k].revents != 0 {
                let p = pollPeers[k]
                let fd = fds[p]
                if recvLeft[p] > 0 {
                    while recvLeft[p] > 0 {
                        let r = Glibc.recv(fd, recvPtr[p]!, recvLeft[p], 0)
                        if r > 0 {
                            recvPtr[p]! += r
                            recvLeft[p] -= r
                            progressed = true
                        } else if r == 0 {
                            throw CommunicatorError.peerDied(rank: p, detail: "connection closed during \(operation)")
                        } else if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR {
                            break
                        } else {
                            throw CommunicatorError.peerDied(rank: p, detail: TCPSocket.errnoText("recv during \(operation)"))
                        }
                    }
                }
                if sendLeft[p] > 0 {
                    while sendLeft[p] > 0 {
                        let r = Glibc.send(fd, sendPtr[p]!, sendLeft[p], Int32(MSG_NOSIGNAL))
                        if r > 0 {
                            sendPtr[p]! += r
                            sendLeft[p] -= r
                            progressed = true
                        } else if r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                            break
                        } else {
                            throw CommunicatorError.peerDied(rank: p, detail: TCPSocket.errnoText("send during \(operation)"))
                        }
                    }
                }
                if pollFds[k].revents & Int16(POLLHUP | POLLERR) != 0 && recvLeft[p] == 0 && sendLeft[p] > 0 {
                    throw CommunicatorError.peerDied(rank: p, detail: "connection closed during \(operation)")
                }
            }
            if progressed {
                lastProgress = Date()
            } else if Date().timeIntervalSince(lastProgress) > timeoutSeconds {
                let stuck = (0..<worldSize).first { recvLeft[$0] > 0 || sendLeft[$0] > 0 } ?? rank
                resetPending()
                throw CommunicatorError.timeout(rank: stuck, seconds: timeoutSeconds, operation: operation)
            }
        }
    }

    private func resetPending() {
        for p in 0..<worldSize { sendLeft[p] = 0; recvLeft[p] = 0 }
    }

    private func ensureScratch(_ floats: Int) {
        if floats > scratchCount {
            scratch.deallocate()
            scratch = .allocate(capacity: floats)
            scratchCount = floats
        }
    }

    @inline(__always)
    private func segment(_ r: Int, of count: Int) -> (start: Int, count: Int) {
        let s = count * r / worldSize
        return (s, count * (r + 1) / worldSize - s)
    }

    // MARK: Collectives

    public func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        let n = worldSize
        guard n > 1, count > 0 else { return }
        let maxSeg = (count + n - 1) / n
        ensureScratch(maxSeg * n)
        let (myStart, myLen) = segment(rank, of: count)
        // Reduce-scatter: segment s goes to rank s; rank q's copy of my segment lands in scratch[q].
        for p in 0..<n where p != rank {
            let (s, l) = segment(p, of: count)
            postSend(p, buffer + s, bytes: l * 4)
            postRecv(p, scratch + p * maxSeg, bytes: myLen * 4)
        }
        try exchange("allReduceSum")
        for q in 0..<n { sources[q] = q == rank ? UnsafePointer(buffer + myStart) : UnsafePointer(scratch + q * maxSeg) }
        reduceSumInOrder(into: buffer + myStart, sources: sources, sourceCount: n, count: myLen)
        // All-gather of the reduced segments.
        for p in 0..<n where p != rank {
            let (s, l) = segment(p, of: count)
            postSend(p, buffer + myStart, bytes: myLen * 4)
            postRecv(p, buffer + s, bytes: l * 4)
        }
        try exchange("allReduceSum")
    }

    public func allGather(_ input: UnsafePointer<Float>, count: Int, into output: UnsafeMutablePointer<Float>) throws {
        if UnsafePointer(output + rank * count) != input { (output + rank * count).update(from: input, count: count) }
        for p in 0..<worldSize where p != rank {
            postSend(p, input, bytes: count * 4)
            postRecv(p, output + p * count, bytes: count * 4)
        }
        try exchange("allGather")
    }

    public func reduceScatterSum(_ input: UnsafePointer<Float>, count: Int, into output: UnsafeMutablePointer<Float>) throws {
        let n = worldSize
        guard n > 1 else { if UnsafePointer(output) != input { output.update(from: input, count: count) }; return }
        ensureScratch(count * n)
        for p in 0..<n where p != rank {
            postSend(p, input + p * count, bytes: count * 4)
            postRecv(p, scratch + p * count, bytes: count * 4)
        }
        try exchange("reduceScatterSum")
        for q in 0..<n { sources[q] = q == rank ? input + rank * count : UnsafePointer(scratch + q * count) }
        reduceSumInOrder(into: output, sources: sources, sourceCount: n, count: count)
    }

    public func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws {
        guard root >= 0 && root < worldSize else {
            throw CommunicatorError.invalidArgument("broadcast root \(root) in a group of \(worldSize)")
        }
        if rank == root {
            for p in 0..<worldSize where p != rank { postSend(p, buffer, bytes: count * 4) }
        } else {
            postRecv(root, buffer, bytes: count * 4)
        }
        try exchange("broadcast")
    }

    public func send(_ buffer: UnsafePointer<Float>, count: Int, to peer: Int) throws {
        guard peer >= 0 && peer < worldSize && peer != rank else {
            throw CommunicatorError.invalidArgument("send to rank \(peer) from rank \(rank) of \(worldSize)")
        }
        postSend(peer, buffer, bytes: count * 4)
        try exchange("send")
    }

    public func recv(_ buffer: UnsafeMutablePointer<Float>, count: Int, from peer: Int) throws {
        guard peer >= 0 && peer < worldSize && peer != rank else {
            throw CommunicatorError.invalidArgument("recv from rank \(peer) at rank \(rank) of \(worldSize)")
        }
        postRecv(peer, buffer, bytes: count * 4)
        try exchange("recv")
    }

    public func barrier() throws {
        tokens[worldSize] &+= 1
        for p in 0..<worldSize where p != rank {
            postSend(p, UnsafeRawPointer(tokens + worldSize), bytes: 1)
            postRecv(p, UnsafeMutableRawPointer(tokens + p), bytes: 1)
        }
        try exchange("barrier")
    }
}
