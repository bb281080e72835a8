import Foundation
import PagodaDistributed

#if canImport(Glibc)
import Glibc
#endif

/// The consumer side of one TCP transfer: reads a request's blocks from the producer's `KVBlockServer`s
/// (one per tensor-parallel rank of the producer) straight into the local blocks, over the TCP stream or, on
/// one host, by copying them out of the producer's memory (`KVSameHostCopy`). Every wait is bounded:
/// `connectTimeout` to reach a producer rank, `transferTimeout` for the whole read.
enum KVBlockFetcher {
    /// One producer rank to read from: its KV server and the global heads to take from it (none: the
    /// read only ends its hold).
    struct Part: Equatable {
        var port: Int
        var heads: Range<Int>
    }

    /// Which heads of this cache come from which producer rank, for a producer of `producerTP` ranks at
    /// `ports` (by rank). Every producer rank is read exactly once (so each frees its blocks at once):
    /// with one consumer rank, each producer rank gives the heads no earlier rank gave; with as many
    /// consumer ranks as producer ranks, rank r reads rank r. Throws with the reason for other pairings.
    static func plan(storage: KVBlockStorage, producerPorts ports: [Int], consumerTP: Int, consumerRank: Int) throws -> [Part] {
        let mine = storage.kvHeadStart..<(storage.kvHeadStart + storage.kvHeadsLocal)
        let ranges = try ports.indices.map { p -> Range<Int> in
            guard let r = storage.kvHeadRange(tpRank: p, tpSize: ports.count) else {
                throw KVTransferSocket.Failure(
                    description: "this model's KV heads cannot be split over the producer's \(ports.count) tensor-parallel ranks")
            }
            return r
        }
        if consumerTP == 1 {
            var next = mine.lowerBound
            return ports.indices.map { p in
                // The heads of rank p that no earlier rank gave (ranks hold consecutive heads, replicas repeat them).
                let lo = max(next, ranges[p].lowerBound), hi = min(mine.upperBound, ranges[p].upperBound)
                if hi > lo { next = hi; return Part(port: ports[p], heads: lo..<hi) }
                return Part(port: ports[p], heads: mine.lowerBound..<mine.lowerBound)
            }
        }
        guard consumerTP == ports.count, ranges[consumerRank] == mine else {
            throw KVTransferSocket.Failure(
                description: "the producer runs \(ports.count) tensor-parallel ranks and this consumer \(consumerTP): "
                    + "a consumer reads either with one rank or with as many ranks as the producer")
        }
        return [Part(port: ports[consumerRank], heads: mine)]
    }

    /// Fills `localBlockIds` with the producer's `remoteBlockIds` (same count), reading every part in
    /// parallel, each over `connectionsPerRank` connections (each with its share of the layers, on its own
    /// thread: over loopback one connection's two copies keep two CPUs busy only in turns). Returns the
    /// bytes read. Throws with the reason when a producer rank is unreachable, refuses, stalls or closes
    /// early; the local blocks may then hold part of the data and must not be used.
    static func fetch(
        host: String, parts: [Part], requestId: String, remoteBlockIds: [Int], localBlockIds: [Int],
        into storage: KVBlockStorage, secret: PeerSecret, connectTimeout: Double, transferTimeout: Double, sameHostCopy: Bool = true,
        connectionsPerRank: Int = 1, pool: KVConnectionPool? = .shared
    ) throws -> Int {
        precondition(remoteBlockIds.count == localBlockIds.count)
        // (part index, layers, connections of that part): a part that reads no head ends its hold in one.
        var jobs: [(part: Int, layers: Range<Int>, connections: Int)] = []
        for (i, part) in parts.enumerated() {
            let n = part.heads.isEmpty ? 1 : max(1, min(connectionsPerRank, storage.kvNumLayers))
            for layers in splitLayers(storage.kvNumLayers, into: n) { jobs.append((i, layers, n)) }
        }
        func run(_ job: (part: Int, layers: Range<Int>, connections: Int)) throws -> Int {
            try fetchPart(
                host: host, part: parts[job.part], requestId: requestId, remoteBlockIds: remoteBlockIds, localBlockIds: localBlockIds,
                into: storage, secret: secret, connectTimeout: connectTimeout, transferTimeout: transferTimeout, sameHostCopy: sameHostCopy,
                layers: job.layers, connections: job.connections, pool: pool)
        }
        if jobs.count == 1 { return try run(jobs[0]) }
        let results = PartResults(count: jobs.count)
        let group = DispatchGroup()
        for (i, job) in jobs.enumerated() {
            group.enter()
            let t = Thread {
                results.set(i, Result { try run(job) })
                group.leave()
            }
            t.name = "pagoda-kv-fetch-part"
            t.start()
        }
        group.wait()  // every part ends by its own deadline
        var total = 0
        for (i, r) in results.all.enumerated() {
            do { total += try r!.get() } catch {
                let part = parts[jobs[i].part]
                throw KVTransferSocket.Failure(description: "producer rank \(jobs[i].part) (port \(part.port)): \(error)")
            }
        }
        return total
    }

    /// The staging buffer of a re-slicing stream read (bytes): a layer's K or V is received in pieces of
    /// this size, each scattered while it is still in L2 (and the buffer stays small for long prompts).
    static let stagingBytes = 256 << 10

    /// Connections per producer rank when the configuration names none: two per transfer, split over the
    /// ranks that give heads (2 from a TP 1 producer, 1 each from TP 2 or more). Measured on 2 CPUs: two
    /// threads copying beat one, and more than two only contended (Benchmarks/pd-disagg/RESULTS.md, run 4).
    static func defaultConnectionsPerRank(_ parts: [Part]) -> Int {
        max(1, 2 / max(1, parts.filter { !$0.heads.isEmpty }.count))
    }

    /// `count` consecutive, nearly equal ranges that cover `0..<numLayers` (fewer when there are fewer layers).
    static func splitLayers(_ numLayers: Int, into count: Int) -> [Range<Int>] {
        let n = max(1, min(count, numLayers))
        return (0..<n).map { k in (k * numLayers / n)..<((k + 1) * numLayers / n) }
    }

    /// Reads `layers` of one producer rank's part straight into the local blocks, over one of the
    /// `connections` that together read that rank. The connection comes from `pool` when it holds an open
    /// one to that rank (no connect, no handshake) and goes back to it after a clean read; a pooled
    /// connection the producer closed before answering (it restarted, or its idle time ran out) is dropped
    /// and a fresh one dialed. Every other failure closes the connection and is thrown.
    static func fetchPart(
        host: String, part: Part, requestId: String, remoteBlockIds: [Int], localBlockIds: [Int],
        into storage: KVBlockStorage, secret: PeerSecret, connectTimeout: Double, transferTimeout: Double, sameHostCopy: Bool = true,
        layers: Range<Int>? = nil, connections: Int = 1, pool: KVConnectionPool? = .shared
    ) throws -> Int {
        let layers = layers ?? 0..<storage.kvNumLayers
        let start = Date()
        func read(_ fd: Int32, _ replied: inout Bool) throws -> Int {
            try readPart(
                fd: fd, part: part, requestId: requestId, remoteBlockIds: remoteBlockIds, localBlockIds: localBlockIds,
                into: storage, deadline: start + transferTimeout, sameHostCopy: sameHostCopy, layers: layers,
                connections: connections, replied: &replied)
        }
        if let pool, let fd = pool.take(host: host, port: part.port, secret: secret) {
            var replied = false
            do {
                let bytes = try read(fd, &replied)
                pool.put(fd, host: host, port: part.port, secret: secret)
                return bytes
            } catch {
                close(fd)
                if replied { throw error }
            }
        }
        let fd = try KVTransferSocket.connect(host: host, port: part.port, deadline: start + connectTimeout)
        var replied = false
        do {
            do { try PeerAuthentication.connect(fd: fd, secret: secret, timeout: connectTimeout) } catch {
                throw KVTransferSocket.Failure(description: "authentication with the producer failed: \(error)")
            }
            let bytes = try read(fd, &replied)
            if let pool { pool.put(fd, host: host, port: part.port, secret: secret) } else { close(fd) }
            return bytes
        } catch {
            close(fd)
            throw error
        }
    }

    /// One part's read on `fd`, a connection to a producer rank the deployment's secret authenticated:
    /// sends the request for `layers` (all when nil; one of `connections` reading the part), checks the reply
    /// and takes the blocks as it offers (same-host copy or stream). `replied` is set once the producer's
    /// reply has arrived (a failure before it, on a pooled connection, means the producer had closed it).
    static func readPart(
        fd: Int32, part: Part, requestId: String, remoteBlockIds: [Int], localBlockIds: [Int], into storage: KVBlockStorage,
        deadline: Date, sameHostCopy: Bool, layers: Range<Int>? = nil, connections: Int = 1
    ) throws -> Int {
        var replied = false
        return try readPart(
            fd: fd, part: part, requestId: requestId, remoteBlockIds: remoteBlockIds, localBlockIds: localBlockIds, into: storage,
            deadline: deadline, sameHostCopy: sameHostCopy, layers: layers, connections: connections, replied: &replied)
    }

    static func readPart(
        fd: Int32, part: Part, requestId: String, remoteBlockIds: [Int], localBlockIds: [Int], into storage: KVBlockStorage,
        deadline: Date, sameHostCopy: Bool, layers: Range<Int>?, connections: Int, replied: inout Bool
    ) throws -> Int {
        let layers = layers ?? 0..<storage.kvNumLayers
        let request = KVBlockReadRequest(
            requestId: requestId, blockIds: remoteBlockIds, numLayers: storage.kvNumLayers, blockSize: storage.kvBlockSize,
            headDim: storage.kvHeadDim, headStart: part.heads.lowerBound, headCount: part.heads.count,
            sameHost: sameHostCopy ? KVSameHostCopy.local : nil, layerStart: layers.lowerBound, layerCount: layers.count,
            connections: connections)
        try KVTransferSocket.sendMessage(fd, request, deadline: deadline)
        let reply = try KVTransferSocket.receiveMessage(fd, KVBlockReadReply.self, deadline: deadline)
        replied = true
        guard reply.ok else {
            throw KVTransferSocket.Failure(description: "the producer refused: \(reply.error ?? "no reason given")")
        }
        if part.heads.isEmpty { return 0 }
        if let offer = reply.sameHostCopy {
            // One host: copy straight out of the producer's memory; if the kernel refuses, the stream follows.
            let outcome = Result {
                try KVSameHostCopy.read(
                    offer, into: storage, remoteBlockIds: remoteBlockIds, localBlockIds: localBlockIds, heads: part.heads, layers: layers)
            }
            let copied = try? outcome.get()
            if case .failure(let error) = outcome { KVSameHostCopy.note(error) } else { KVSameHostCopy.note(nil) }
            try KVTransferSocket.sendMessage(fd, KVSameHostCopy.Done(copied: copied != nil), deadline: deadline)
            if let copied { return copied }
        }
        let slices = KVBlockSlices(storage: storage, blockIds: localBlockIds, headStart: part.heads.lowerBound, headCount: part.heads.count)
        let iov = UnsafeMutablePointer<iovec>.allocate(capacity: max(1, slices.maxSegments))
        defer { iov.deallocate() }
        // Some of this cache's heads per token: received in L2-sized pieces into staging, each scattered from
        // cache before the next (see `KVBlockSlices.scatter`).
        let stagingBytes = min(slices.bytesPerLayerHalf, Self.stagingBytes)
        let staging: UnsafeMutableRawPointer? = slices.isWholeBlocks ? nil : .allocate(byteCount: max(1, stagingBytes), alignment: 64)
        defer { staging?.deallocate() }
        for layer in layers {
            for value in [false, true] {
                let n = slices.segments(layer: layer, value: value, into: iov)
                if let staging {
                    var (left, next) = (slices.bytesPerLayerHalf, 0)
                    while left > 0 {
                        let piece = min(left, stagingBytes)
                        try KVTransferSocket.recv(fd, staging, piece, deadline: deadline)
                        KVBlockSlices.scatter(staging, piece, to: iov, n, from: &next)
                        left -= piece
                    }
                } else {
                    try KVTransferSocket.recvv(fd, iov, n, deadline: deadline)
                }
            }
        }
        return 2 * layers.count * slices.bytesPerLayerHalf
    }
}

/// The outcomes of a fetch's parallel parts, set by their threads.
private final class PartResults: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Result<Int, Error>?]
    init(count: Int) { results = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ r: Result<Int, Error>) { lock.lock(); results[i] = r; lock.unlock() }
    var all: [Result<Int, Error>?] { lock.lock(); defer { lock.unlock() }; return results }
}
