import Foundation
import PagodaDistributed
import XCTest

@testable import PagodaEngine

/// The TCP connector's data path without a model: `KVBlockServer`s serving `KVBlockArena`s over loopback and
/// `KVBlockFetcher` reading them, between tensor-parallel layouts (re-slicing KV heads). Every float must
/// land where the producer's pattern says, every read must end its hold, and a wrong pairing is refused.
final class KVBlockTransferTests: XCTestCase {
    private let layers = 3, blockSize = 4, heads = 4, headDim = 8
    /// The deployment secret both sides prove (every KV connection starts with the handshake).
    private let secret = PeerSecret.random()

    private func arena(rank: Int, tp: Int, blocks: Int = 16) -> KVBlockArena {
        KVBlockArena(
            numLayers: layers, numBlocks: blocks, blockSize: blockSize, numKVHeads: heads, headDim: headDim, tpRank: rank, tpSize: tp)
    }

    /// Producer ranks with `remote` filled and held as request `id`, served on loopback.
    private func producer(tp: Int, remote: [Int], id: String) throws -> ([KVBlockArena], [KVBlockServer]) {
        let arenas = (0..<tp).map { arena(rank: $0, tp: tp) }
        let servers = try arenas.map { a -> KVBlockServer in
            a.fillPattern(blocks: remote)
            let s = try KVBlockServer(host: "127.0.0.1", port: 0, ioTimeoutSeconds: 5, secret: secret)
            s.start(storage: a)
            s.hold(id, blockIds: remote, timeoutSeconds: 5)
            return s
        }
        return (arenas, servers)
    }

    private func assertEveryHoldEnded(_ servers: [KVBlockServer], _ id: String) {
        for (i, s) in servers.enumerated() {
            let deadline = Date() + 5
            var ended = false
            while !ended && Date() < deadline {
                ended = s.takeFinished().0.contains(id)
                if !ended { usleep(1000) }
            }
            XCTAssertTrue(ended, "producer rank \(i) still holds \(id)")
        }
    }

    func testATensorParallelProducersHeadsLandInOneConsumerRank() throws {
        let remote = [9, 2, 3, 14], local = [5, 0, 11, 12]
        let (_, servers) = try producer(tp: 2, remote: remote, id: "r")
        defer { for s in servers { s.shutdown() } }
        let consumer = arena(rank: 0, tp: 1)
        let parts = try KVBlockFetcher.plan(storage: consumer, producerPorts: servers.map(\.port), consumerTP: 1, consumerRank: 0)
        XCTAssertEqual(parts.map(\.heads), [0..<2, 2..<4])
        let bytes = try KVBlockFetcher.fetch(
            host: "127.0.0.1", parts: parts, requestId: "r", remoteBlockIds: remote, localBlockIds: local, into: consumer,
            secret: secret, connectTimeout: 2, transferTimeout: 5, sameHostCopy: false)
        XCTAssertEqual(bytes, 2 * layers * remote.count * blockSize * heads * headDim * 4)
        XCTAssertNil(consumer.firstPatternMismatch(blocks: local, sourceBlocks: remote))
        assertEveryHoldEnded(servers, "r")
    }

    func testEqualTensorParallelSizesReadRankToRank() throws {
        let remote = [1, 7, 8], local = [4, 3, 15]
        let (_, servers) = try producer(tp: 2, remote: remote, id: "q")
        defer { for s in servers { s.shutdown() } }
        for rank in 0..<2 {
            let consumer = arena(rank: rank, tp: 2)
            let parts = try KVBlockFetcher.plan(storage: consumer, producerPorts: servers.map(\.port), consumerTP: 2, consumerRank: rank)
            XCTAssertEqual(parts, [KVBlockFetcher.Part(port: servers[rank].port, heads: (2 * rank)..<(2 * rank + 2))])
            _ = try KVBlockFetcher.fetch(
                host: "127.0.0.1", parts: parts, requestId: "q", remoteBlockIds: remote, localBlockIds: local, into: consumer,
                secret: secret, connectTimeout: 2, transferTimeout: 5)
            XCTAssertNil(consumer.firstPatternMismatch(blocks: local, sourceBlocks: remote), "rank \(rank)")
        }
        assertEveryHoldEnded(servers, "q")
    }

    func testUnsupportedPairingsAndForeignHeadsAreRefusedWithTheReason() throws {
        // A consumer with more ranks than the producer.
        XCTAssertThrowsError(try KVBlockFetcher.plan(storage: arena(rank: 0, tp: 2), producerPorts: [1234], consumerTP: 2, consumerRank: 0))
        {
            XCTAssertTrue("\($0)".contains("as many ranks as the producer"), "\($0)")
        }
        // Heads the producer rank does not cache: refused, and the hold stays for the right reader.
        let (_, servers) = try producer(tp: 2, remote: [0, 1], id: "h")
        defer { for s in servers { s.shutdown() } }
        let consumer = arena(rank: 0, tp: 1)
        XCTAssertThrowsError(
            try KVBlockFetcher.fetch(
                host: "127.0.0.1", parts: [KVBlockFetcher.Part(port: servers[0].port, heads: 1..<3)], requestId: "h",
                remoteBlockIds: [0, 1], localBlockIds: [2, 3], into: consumer, secret: secret, connectTimeout: 2, transferTimeout: 5)
        ) { XCTAssertTrue("\($0)".contains("are not cached here"), "\($0)") }
        XCTAssertEqual(servers[0].takeFinished().blocksHeld, 2, "a refused read leaves the hold in place")
    }

    func testASameHostReaderCopiesOutOfTheProducersMemory() throws {
        try XCTSkipIf(KVSameHostCopy.local == nil, "no /proc identity here")
        let remote = [3, 6, 10], local = [1, 2, 4]
        let (_, servers) = try producer(tp: 2, remote: remote, id: "c")
        defer { for s in servers { s.shutdown() } }
        let consumer = arena(rank: 0, tp: 1)
        let parts = try KVBlockFetcher.plan(storage: consumer, producerPorts: servers.map(\.port), consumerTP: 1, consumerRank: 0)
        _ = try KVBlockFetcher.fetch(
            host: "127.0.0.1", parts: parts, requestId: "c", remoteBlockIds: remote, localBlockIds: local, into: consumer,
            secret: secret, connectTimeout: 2, transferTimeout: 5, sameHostCopy: true)
        XCTAssertNil(consumer.firstPatternMismatch(blocks: local, sourceBlocks: remote))
        assertEveryHoldEnded(servers, "c")  // each server counts the copy once the reader said it is done
        XCTAssertEqual(servers.map(\.numSameHostReads), [1, 1], "both ranks' heads were copied, none streamed")
    }

    func testTheBenchmarkMovesCheckedBytesAndReportsEveryBandwidth() throws {
        let shape = KVTransferBenchmark.Shape(numLayers: 2, numKVHeads: 2, headDim: 16, blockSize: 16)
        let r = try KVTransferBenchmark.run(shape: shape, tokens: 256, producerTP: 2, iterations: 2, connectionsPerRank: [1, 2])
        XCTAssertEqual(r.bytes, 2 * 2 * 256 * 2 * 16 * 4)
        XCTAssertEqual(r.paths.map(\.connectionsPerRank), [1, 2])
        for p in r.paths { XCTAssertGreaterThan(r.gbs(p.streamSeconds), 0) }
        XCTAssertGreaterThan(r.memcpyGBs, 0)
        let lines = r.summary.split(separator: "\n")
        XCTAssertEqual(lines.count, 2, r.summary)
        XCTAssertTrue(lines.allSatisfy { $0.contains("TCP stream") && $0.contains("memcpy") }, r.summary)
    }

    /// A read split over several connections per producer rank (each a range of layers), streamed and
    /// copied: every float lands in place, each rank counts one send and frees the blocks once.
    func testAReadSplitOverConnectionsPerRankMovesEveryLayer() throws {
        for sameHost in [false, true] {
            if sameHost && KVSameHostCopy.local == nil { continue }
            let remote = [9, 2, 3, 14], local = [5, 0, 11, 12]
            let (_, servers) = try producer(tp: 2, remote: remote, id: "s")
            defer { for s in servers { s.shutdown() } }
            let consumer = arena(rank: 0, tp: 1)
            let parts = try KVBlockFetcher.plan(storage: consumer, producerPorts: servers.map(\.port), consumerTP: 1, consumerRank: 0)
            let bytes = try KVBlockFetcher.fetch(
                host: "127.0.0.1", parts: parts, requestId: "s", remoteBlockIds: remote, localBlockIds: local, into: consumer,
                secret: secret, connectTimeout: 2, transferTimeout: 5, sameHostCopy: sameHost, connectionsPerRank: 5)
            XCTAssertEqual(bytes, 2 * layers * remote.count * blockSize * heads * headDim * 4)
            XCTAssertNil(consumer.firstPatternMismatch(blocks: local, sourceBlocks: remote), "same host: \(sameHost)")
            assertEveryHoldEnded(servers, "s")
            // 5 connections asked, 3 layers: one connection per layer and rank.
            XCTAssertEqual(servers.map(\.numSameHostReads), sameHost ? [layers, layers] : [0, 0])
        }
    }

    func testTheDefaultIsTwoConnectionsPerTransferSplitOverTheRanks() {
        let p = { (heads: Range<Int>) in KVBlockFetcher.Part(port: 1, heads: heads) }
        XCTAssertEqual(KVBlockFetcher.defaultConnectionsPerRank([p(0..<4)]), 2)
        XCTAssertEqual(KVBlockFetcher.defaultConnectionsPerRank([p(0..<2), p(2..<4)]), 1)
        XCTAssertEqual(KVBlockFetcher.defaultConnectionsPerRank([p(0..<4), p(4..<4)]), 2, "a rank giving no head reads nothing")
        XCTAssertEqual(KVBlockFetcher.defaultConnectionsPerRank((0..<4).map { p($0..<($0 + 1)) }), 1)
    }

    func testLayerSplitsCoverEveryLayerOnce() {
        XCTAssertEqual(KVBlockFetcher.splitLayers(24, into: 2), [0..<12, 12..<24])
        XCTAssertEqual(KVBlockFetcher.splitLayers(5, into: 3), [0..<1, 1..<3, 3..<5])
        XCTAssertEqual(KVBlockFetcher.splitLayers(2, into: 4), [0..<1, 1..<2])
        XCTAssertEqual(KVBlockFetcher.splitLayers(3, into: 1), [0..<3])
    }

    /// One connection of a read split in two reads its layers; the other never comes: the blocks stay held
    /// until the hold's timeout, then are freed (no leak), and the same layers cannot be read twice.
    func testASplitReadWhoseOtherConnectionNeverComesExpires() throws {
        let remote = [1, 2]
        let a = arena(rank: 0, tp: 1)
        a.fillPattern(blocks: remote)
        let server = try KVBlockServer(host: "127.0.0.1", port: 0, ioTimeoutSeconds: 5, secret: secret)
        defer { server.shutdown() }
        server.start(storage: a)
        server.hold("p", blockIds: remote, timeoutSeconds: 0.5)
        let consumer = arena(rank: 0, tp: 1)
        let part = KVBlockFetcher.Part(port: server.port, heads: 0..<heads)
        func read(_ layers: Range<Int>) throws -> Int {
            try KVBlockFetcher.fetchPart(
                host: "127.0.0.1", part: part, requestId: "p", remoteBlockIds: remote, localBlockIds: [3, 4], into: consumer,
                secret: secret, connectTimeout: 2, transferTimeout: 5, sameHostCopy: false, layers: layers, connections: 2)
        }
        XCTAssertEqual(try read(0..<1), 2 * remote.count * blockSize * heads * headDim * 4)
        XCTAssertThrowsError(try read(0..<2)) { XCTAssertTrue("\($0)".contains("do not split the read"), "\($0)") }
        XCTAssertEqual(server.takeFinished().blocksHeld, 2, "half read: still held")
        usleep(700_000)
        let (finished, stats, held) = server.takeFinished()
        XCTAssertEqual(finished, ["p"])
        XCTAssertEqual(held, 0)
        XCTAssertEqual(stats.sendTimeouts, 1)
    }

    /// Consecutive reads from one producer rank share one authenticated connection (`KVConnectionPool`);
    /// a pooled connection the producer closed (its idle time ran out) is replaced by a fresh one, and one
    /// to a producer that stopped ends in an error, not a wait.
    func testReadsReuseAPooledConnectionAndReplaceOneTheProducerClosed() throws {
        let remote = [1, 2]
        let a = arena(rank: 0, tp: 1)
        a.fillPattern(blocks: remote)
        let server = try KVBlockServer(host: "127.0.0.1", port: 0, ioTimeoutSeconds: 5, secret: secret, idleSeconds: 0.3)
        server.start(storage: a)
        let pool = KVConnectionPool()
        let consumer = arena(rank: 0, tp: 1)
        let part = KVBlockFetcher.Part(port: server.port, heads: 0..<heads)
        func read(_ id: String) throws -> Int {
            server.hold(id, blockIds: remote, timeoutSeconds: 5)
            consumer.zero(blocks: [3, 4])
            let n = try KVBlockFetcher.fetchPart(
                host: "127.0.0.1", part: part, requestId: id, remoteBlockIds: remote, localBlockIds: [3, 4], into: consumer,
                secret: secret, connectTimeout: 2, transferTimeout: 5, sameHostCopy: false, pool: pool)
            XCTAssertNil(consumer.firstPatternMismatch(blocks: [3, 4], sourceBlocks: remote))
            return n
        }
        let bytes = 2 * layers * remote.count * blockSize * heads * headDim * 4
        XCTAssertEqual(try read("r1"), bytes)
        XCTAssertEqual(pool.count, 1)
        XCTAssertEqual(try read("r2"), bytes)
        XCTAssertEqual(pool.count, 1, "the second read reused the first read's connection")
        assertEveryHoldEnded([server], "r2")
        // A reader proving another secret gets none of the pooled connections: it shakes hands, and fails.
        server.hold("w", blockIds: remote, timeoutSeconds: 5)
        XCTAssertThrowsError(
            try KVBlockFetcher.fetchPart(
                host: "127.0.0.1", part: part, requestId: "w", remoteBlockIds: remote, localBlockIds: [3, 4], into: consumer,
                secret: PeerSecret.random(), connectTimeout: 2, transferTimeout: 5, sameHostCopy: false, pool: pool)
        ) { XCTAssertTrue("\($0)".contains("authentication"), "\($0)") }
        XCTAssertEqual(pool.count, 1)
        usleep(600_000)  // the producer closes the idle connection
        XCTAssertEqual(try read("r3"), bytes)
        XCTAssertEqual(pool.count, 1)
        server.shutdown()
        usleep(300_000)
        let t0 = Date()
        XCTAssertThrowsError(try read("r4"))
        XCTAssertLessThan(Date().timeIntervalSince(t0), 3)
        XCTAssertEqual(pool.count, 0)
    }
}
