import Foundation
import PagodaDistributed

/// Measures the TCP connector's transfer bandwidth over loopback against a plain memory copy of the same
/// bytes (`pagoda bench kv-transfer`): a producer's `KVBlockServer`s (one per tensor-parallel rank, each
/// with its share of the KV heads) serve a prompt's blocks from `KVBlockArena`s, and the consumer reads
/// them with `KVBlockFetcher` into its own arena, exactly as a decode server does — over the TCP stream,
/// then by same-host copy (`KVSameHostCopy`); the reference copies the same blocks between two arenas
/// with `memcpy`, block by block.
public enum KVTransferBenchmark {
    public struct Shape: Sendable {
        public var numLayers: Int, numKVHeads: Int, headDim: Int, blockSize: Int
        public init(numLayers: Int, numKVHeads: Int, headDim: Int, blockSize: Int) {
            self.numLayers = numLayers; self.numKVHeads = numKVHeads; self.headDim = headDim; self.blockSize = blockSize
        }
        /// Qwen2.5-0.5B: 24 layers, 2 KV heads of 64, blocks of 16 tokens (24 KiB of KV per token).
        public static let qwen25_05b = Shape(numLayers: 24, numKVHeads: 2, headDim: 64, blockSize: 16)
    }

    /// The medians of one way of reading: `connectionsPerRank` connections to each producer rank.
    public struct Path: Sendable {
        public var connectionsPerRank: Int
        /// Median seconds of one transfer (request, every byte in place; connections are reused) over the TCP stream and by
        /// same-host copy (nil: the kernel refused it here).
        public var streamSeconds: Double
        public var sameHostSeconds: Double?
    }

    public struct Result: Sendable {
        public var bytes: Int
        public var paths: [Path]
        /// Median seconds of one memcpy pass over the same blocks.
        public var memcpySeconds: Double
        public var memcpyGBs: Double { Double(bytes) / memcpySeconds / 1e9 }
        public func gbs(_ seconds: Double) -> Double { Double(bytes) / seconds / 1e9 }
        /// One line per way of reading.
        public var summary: String {
            paths.map { p in
                var s = String(
                    format: "KV transfer of %.1f MiB, %d connection(s) per producer rank: TCP stream %.2f GB/s (%.0f %% of memcpy)",
                    Double(bytes) / 1_048_576, p.connectionsPerRank, gbs(p.streamSeconds), 100 * gbs(p.streamSeconds) / memcpyGBs)
                if let c = p.sameHostSeconds {
                    s += String(format: ", same-host copy %.2f GB/s (%.0f %%)", gbs(c), 100 * gbs(c) / memcpyGBs)
                } else {
                    s += ", same-host copy refused by the kernel"
                }
                return s + String(format: "; memcpy of the same blocks %.2f GB/s", memcpyGBs)
            }.joined(separator: "\n")
        }
    }

    /// Transfers a prompt of `tokens` tokens `iterations` times each way (on connections kept open between
    /// transfers, `KVConnectionPool`, as a decode server does; the warm-up opens them) from a producer of `producerTP`
    /// ranks to one consumer rank (after one unmeasured warm-up per way, whose bytes are checked against the
    /// producer's), with each of `connectionsPerRank`, alternating with the memcpy reference so every way
    /// sees the same machine load (none given: the connector's default, `defaultConnectionsPerRank`).
    public static func run(
        shape: Shape, tokens: Int, producerTP: Int, iterations: Int, connectionsPerRank: [Int] = [],
        log: (String) -> Void = { _ in }
    ) throws -> Result {
        precondition(connectionsPerRank.allSatisfy { $0 >= 1 })
        let numBlocks = (tokens + shape.blockSize - 1) / shape.blockSize
        // Blocks scattered in the caches (a real cache's are): every other block, in shuffled order.
        var rng = SystemRandomNumberGenerator()
        let remote = Array(stride(from: 0, to: 2 * numBlocks, by: 2)).shuffled(using: &rng)
        let local = Array(stride(from: 1, to: 2 * numBlocks, by: 2)).shuffled(using: &rng)
        func arena(_ rank: Int, _ tp: Int) -> KVBlockArena {
            KVBlockArena(
                numLayers: shape.numLayers, numBlocks: 2 * numBlocks, blockSize: shape.blockSize, numKVHeads: shape.numKVHeads,
                headDim: shape.headDim, tpRank: rank, tpSize: tp)
        }
        // Huge pages, as the TCP connector asks for a server's cache (`adviseHugePages`).
        let producers = (0..<producerTP).map { arena($0, producerTP) }
        for p in producers {
            p.adviseHugePages()
            p.fillPattern(blocks: remote)
        }
        let consumer = arena(0, 1)
        consumer.adviseHugePages()
        let secret = PeerSecret.random()  // the handshake is part of every read, as in serving
        let servers = try producers.map { p -> KVBlockServer in
            let s = try KVBlockServer(host: "127.0.0.1", port: 0, ioTimeoutSeconds: 60, secret: secret)
            s.start(storage: p)
            return s
        }
        defer {
            for s in servers {
                s.shutdown()
                KVConnectionPool.shared.closeAll(host: "127.0.0.1", port: s.port)
            }
        }
        let parts = try KVBlockFetcher.plan(storage: consumer, producerPorts: servers.map(\.port), consumerTP: 1, consumerRank: 0)
        let connectionsPerRank = connectionsPerRank.isEmpty ? [KVBlockFetcher.defaultConnectionsPerRank(parts)] : connectionsPerRank
        let source = arena(0, 1)
        source.adviseHugePages()
        source.fillPattern(blocks: remote)
        let blockBytes = consumer.kvBlockFloats * 4
        var reads = 0

        /// One read of the held blocks; returns (seconds, bytes, whether the bytes came by same-host copy).
        func transfer(sameHost: Bool, connections: Int) throws -> (Double, Int, Bool) {
            reads += 1
            let id = "bench-\(reads)"
            for s in servers { s.hold(id, blockIds: remote, timeoutSeconds: 60) }
            consumer.zero(blocks: local)
            let copiesBefore = servers.map(\.numSameHostReads).reduce(0, +)
            let t0 = Date()
            let bytes = try KVBlockFetcher.fetch(
                host: "127.0.0.1", parts: parts, requestId: id, remoteBlockIds: remote, localBlockIds: local, into: consumer,
                secret: secret, connectTimeout: 5, transferTimeout: 60, sameHostCopy: sameHost, connectionsPerRank: connections)
            let dt = Date().timeIntervalSince(t0)
            // Every server lets go of the hold when its read ended.
            var ended = Array(repeating: false, count: servers.count)
            let deadline = Date() + 10
            while ended.contains(false) && Date() < deadline {
                for (i, s) in servers.enumerated() where !ended[i] && s.takeFinished().0.contains(id) { ended[i] = true }
                if ended.contains(false) { usleep(200) }
            }
            let copies = servers.map(\.numSameHostReads).reduce(0, +) - copiesBefore
            let reading = parts.filter { !$0.heads.isEmpty }.count * min(connections, shape.numLayers)
            return (dt, bytes, copies == reading)
        }
        func memcpyPass() -> Double {
            let t0 = Date()
            for layer in 0..<shape.numLayers {
                for value in [false, true] {
                    for (r, l) in zip(remote, local) {
                        memcpy(
                            consumer.kvBlockPointer(layer: layer, block: l, value: value),
                            source.kvBlockPointer(layer: layer, block: r, value: value), blockBytes)
                    }
                }
            }
            return Date().timeIntervalSince(t0)
        }

        var bytes = 0
        var sameHostWorks = true
        for connections in connectionsPerRank {
            for sameHost in [false, true] {  // warm-ups, checked
                let (_, b, viaCopy) = try transfer(sameHost: sameHost, connections: connections)
                bytes = b
                if sameHost { sameHostWorks = sameHostWorks && viaCopy }
                if let bad = consumer.firstPatternMismatch(blocks: local, sourceBlocks: remote) {
                    throw KVTransferSocket.Failure(description: "the transferred KV differs from the producer's: \(bad)")
                }
            }
        }
        _ = memcpyPass()
        var stream = connectionsPerRank.map { _ in [Double]() }, copy = stream, mem: [Double] = []
        for k in 1...iterations {
            var line = "iteration \(k):"
            for (i, connections) in connectionsPerRank.enumerated() {
                stream[i].append(try transfer(sameHost: false, connections: connections).0)
                if sameHostWorks { copy[i].append(try transfer(sameHost: true, connections: connections).0) }
                line += String(format: " [%d per rank] TCP stream %.2f GB/s", connections, Double(bytes) / stream[i].last! / 1e9)
                if let c = copy[i].last { line += String(format: ", same-host copy %.2f GB/s;", Double(bytes) / c / 1e9) }
            }
            mem.append(memcpyPass())
            log(line + String(format: " memcpy %.2f GB/s", Double(bytes) / mem.last! / 1e9))
        }
        func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
        let paths = connectionsPerRank.indices.map { i in
            Path(
                connectionsPerRank: connectionsPerRank[i], streamSeconds: median(stream[i]),
                sameHostSeconds: copy[i].isEmpty ? nil : median(copy[i]))
        }
        return Result(bytes: bytes, paths: paths, memcpySeconds: median(mem))
    }
}
