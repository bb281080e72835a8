import Foundation
import PagodaDistributed
import XCTest

@testable import PagodaEngine

/// The same-host copy's segment planning (`KVCopyPlan`) and the copy itself (`KVSameHostCopy.read`, here
/// out of this process's own memory), against a naive twin: a per-token, per-head copy of the same blocks.
/// The bytes must land exactly where the twin puts them, and no other byte of the consumer may change.
final class KVCopyPlanTests: XCTestCase {
    private let layers = 3, blockSize = 4, heads = 4, headDim = 8

    private func arena(rank: Int, tp: Int, blocks: Int = 24) -> KVBlockArena {
        KVBlockArena(
            numLayers: layers, numBlocks: blocks, blockSize: blockSize, numKVHeads: heads, headDim: headDim, tpRank: rank, tpSize: tp)
    }

    /// The naive twin: heads `wanted` of `source`'s blocks copied token by token, head by head into `target`.
    private func naiveCopy(
        from source: KVBlockArena, _ sourceIds: [Int], to target: KVBlockArena, _ targetIds: [Int], heads wanted: Range<Int>
    ) {
        for layer in 0..<layers {
            for value in [false, true] {
                for (s, t) in zip(sourceIds, targetIds) {
                    let from = source.kvBlockPointer(layer: layer, block: s, value: value)
                    let to = target.kvBlockPointer(layer: layer, block: t, value: value)
                    for token in 0..<blockSize {
                        for h in wanted {
                            for i in 0..<headDim {
                                to[(token * target.kvHeadsLocal + h - target.kvHeadStart) * headDim + i] =
                                    from[(token * source.kvHeadsLocal + h - source.kvHeadStart) * headDim + i]
                            }
                        }
                    }
                }
            }
        }
    }

    /// Every float of every block of the two caches equal (described at the first difference).
    private func assertSame(_ a: KVBlockArena, _ b: KVBlockArena, _ what: String) {
        for layer in 0..<layers {
            for value in [false, true] {
                let p = a.kvBlockPointer(layer: layer, block: 0, value: value)
                let q = b.kvBlockPointer(layer: layer, block: 0, value: value)
                for i in 0..<(a.kvNumBlocks * a.kvBlockFloats) where p[i] != q[i] {
                    XCTFail("\(what): layer \(layer) \(value ? "V" : "K") float \(i): \(p[i]), twin \(q[i])")
                    return
                }
            }
        }
    }

    func testSourceBlocksInAddressOrderMergeIntoOneSegmentPerRun() {
        let source = arena(rank: 0, tp: 1), target = arena(rank: 0, tp: 1)
        // The request lists them shuffled; in address order they are two runs: 3...6 and 9.
        let plan = KVCopyPlan(
            source: source, target: target, sourceBlockIds: [5, 9, 3, 6, 4], targetBlockIds: [0, 1, 2, 7, 8], heads: 0..<heads)
        XCTAssertEqual(plan.source.blockIds, [3, 4, 5, 6, 9])
        XCTAssertEqual(plan.target.blockIds, [2, 8, 0, 7, 1], "each target block stays paired with its source block")
        let iov = UnsafeMutablePointer<iovec>.allocate(capacity: plan.source.maxSegments)
        defer { iov.deallocate() }
        XCTAssertEqual(plan.source.segments(layer: 1, value: true, into: iov), 2)
        XCTAssertEqual(iov[0].iov_len, 4 * source.kvBlockFloats * 4)
        XCTAssertEqual(iov[0].iov_base, UnsafeMutableRawPointer(source.kvBlockPointer(layer: 1, block: 3, value: true)))
        XCTAssertEqual(iov[1].iov_len, source.kvBlockFloats * 4)
        // Target blocks 7 and 8 are adjacent but not in this order: nothing merges.
        XCTAssertEqual(plan.target.segments(layer: 1, value: true, into: iov), 5)
    }

    func testShortGapsBetweenSourceBlocksAreReadThroughIntoTheSink() {
        let source = arena(rank: 0, tp: 1, blocks: 40), target = arena(rank: 0, tp: 1, blocks: 40)
        let blockBytes = source.kvBlockFloats * 4  // 512 bytes: a gap of 2 blocks is read through, one of 18 is not
        XCTAssertLessThan(18 * blockBytes, 2 * KVCopyPlan.maxGapBytes)
        XCTAssertGreaterThan(18 * blockBytes, KVCopyPlan.maxGapBytes)
        let plan = KVCopyPlan(
            source: source, target: target, sourceBlockIds: [9, 6, 3, 30], targetBlockIds: [0, 1, 2, 5], heads: 0..<heads)
        let siov = UnsafeMutablePointer<iovec>.allocate(capacity: plan.maxSourceSegments)
        let tiov = UnsafeMutablePointer<iovec>.allocate(capacity: plan.maxTargetSegments)
        let sink = UnsafeMutableRawPointer.allocate(byteCount: KVCopyPlan.maxGapBytes, alignment: 64)
        defer { siov.deallocate(); tiov.deallocate(); sink.deallocate() }
        let (ns, nt) = plan.segments(layer: 2, value: false, source: siov, target: tiov, sink: sink)
        // Source: 3...9 as one run (gaps 4-5 and 7-8 read through), then 30 alone (a gap of 20 blocks).
        XCTAssertEqual(ns, 2)
        XCTAssertEqual(siov[0].iov_base, UnsafeMutableRawPointer(source.kvBlockPointer(layer: 2, block: 3, value: false)))
        XCTAssertEqual(siov[0].iov_len, 7 * blockBytes)
        XCTAssertEqual(siov[1].iov_len, blockBytes)
        // Target: block 2, sink, block 1, sink, block 0, block 5; both sides the same length.
        XCTAssertEqual(nt, 6)
        XCTAssertEqual((0..<nt).map { tiov[$0].iov_base == sink }, [false, true, false, true, false, false])
        XCTAssertEqual((0..<nt).map { tiov[$0].iov_len }.reduce(0, +), (0..<ns).map { siov[$0].iov_len }.reduce(0, +))
    }

    func testASameHostCopyPutsEveryHeadWhereTheNaiveTwinDoes() throws {
        try XCTSkipIf(KVSameHostCopy.local == nil, "no /proc identity here")
        var rng = SystemRandomNumberGenerator()
        let remote = Array(0..<24).shuffled(using: &rng).prefix(7).map { $0 }
        let local = Array(0..<24).shuffled(using: &rng).prefix(7).map { $0 }
        // Producer TP 2 into one consumer rank (each rank gives half of every token's heads), producer TP 1
        // into one (whole blocks), and a rank giving only part of what it holds.
        for (tp, rank, wanted) in [(2, 0, 0..<2), (2, 1, 2..<4), (1, 0, 0..<4), (1, 0, 1..<3)] {
            let producer = arena(rank: rank, tp: tp)
            producer.fillPattern(blocks: remote)
            let consumer = arena(rank: 0, tp: 1), twin = arena(rank: 0, tp: 1)
            naiveCopy(from: producer, remote, to: twin, local, heads: wanted)
            for layers in [0..<3, 1..<2] {
                consumer.zero(blocks: Array(0..<24))
                let bytes = try KVSameHostCopy.read(
                    KVSameHostCopy.offer(producer), into: consumer, remoteBlockIds: remote, localBlockIds: local, heads: wanted,
                    layers: layers)
                XCTAssertEqual(bytes, 2 * layers.count * remote.count * blockSize * wanted.count * headDim * 4)
                if layers == 0..<3 { assertSame(consumer, twin, "TP \(tp) rank \(rank) heads \(wanted)") }
            }
            // Layer 1 alone: the other layers untouched (zero).
            XCTAssertEqual(consumer.kvBlockPointer(layer: 0, block: local[0], value: false)[wanted.lowerBound * headDim], 0)
            XCTAssertEqual(consumer.kvBlockPointer(layer: 2, block: local[0], value: true)[wanted.lowerBound * headDim], 0)
            XCTAssertNotEqual(consumer.kvBlockPointer(layer: 1, block: local[0], value: false)[wanted.lowerBound * headDim], 0)
        }
    }

    /// A TP 2 producer's blocks into one consumer rank at a real model's block size, more bytes per layer
    /// than the stream's staging buffer holds (some source runs with gaps read through): every head lands
    /// where the producer's pattern says, by same-host copy and over the TCP stream (received in pieces).
    func testALargeReslicingReadPutsEveryHeadInPlace() throws {
        try XCTSkipIf(KVSameHostCopy.local == nil, "no /proc identity here")
        let (layers, blockSize, heads, headDim, blocks) = (2, 16, 4, 64, 160)
        func big(rank: Int, tp: Int) -> KVBlockArena {
            KVBlockArena(
                numLayers: layers, numBlocks: blocks, blockSize: blockSize, numKVHeads: heads, headDim: headDim, tpRank: rank, tpSize: tp)
        }
        var rng = SystemRandomNumberGenerator()
        // 70 blocks of 8 KiB per producer rank (560 KiB per layer half): runs, short gaps and long ones.
        let remote = Array(0..<blocks).shuffled(using: &rng).prefix(70).map { $0 }
        let local = Array(0..<blocks).shuffled(using: &rng).prefix(70).map { $0 }
        XCTAssertGreaterThan(remote.count * blockSize * 2 * headDim * 4, 2 * KVBlockFetcher.stagingBytes)
        let producers = [big(rank: 0, tp: 2), big(rank: 1, tp: 2)]
        for p in producers { p.fillPattern(blocks: remote) }
        let consumer = big(rank: 0, tp: 1)
        for (r, p) in producers.enumerated() {
            let bytes = try KVSameHostCopy.read(
                KVSameHostCopy.offer(p), into: consumer, remoteBlockIds: remote, localBlockIds: local, heads: (2 * r)..<(2 * r + 2))
            XCTAssertEqual(bytes, 2 * layers * remote.count * blockSize * 2 * headDim * 4)
        }
        XCTAssertNil(consumer.firstPatternMismatch(blocks: local, sourceBlocks: remote))

        // The same over the TCP stream.
        let secret = PeerSecret.random()
        let servers = try producers.map { p -> KVBlockServer in
            let s = try KVBlockServer(host: "127.0.0.1", port: 0, ioTimeoutSeconds: 5, secret: secret)
            s.start(storage: p)
            s.hold("big", blockIds: remote, timeoutSeconds: 5)
            return s
        }
        defer { for s in servers { s.shutdown() } }
        consumer.zero(blocks: local)
        let parts = try KVBlockFetcher.plan(storage: consumer, producerPorts: servers.map(\.port), consumerTP: 1, consumerRank: 0)
        _ = try KVBlockFetcher.fetch(
            host: "127.0.0.1", parts: parts, requestId: "big", remoteBlockIds: remote, localBlockIds: local, into: consumer,
            secret: secret, connectTimeout: 2, transferTimeout: 10, sameHostCopy: false, pool: nil)
        XCTAssertNil(consumer.firstPatternMismatch(blocks: local, sourceBlocks: remote))
    }
}
