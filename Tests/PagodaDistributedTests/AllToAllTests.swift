import Foundation
import XCTest

@testable import PagodaDistributed

/// The expert-parallel all-to-all: counts first, then exactly that many rows from every peer, over shared
/// memory and TCP (ranks as threads); and a peer that never arrives is a timeout naming it.
final class AllToAllTests: XCTestCase {
    /// Rows rank `s` sends rank `d`: uneven, some zero, some larger than one chunk.
    static func rows(from s: Int, to d: Int) -> Int { [0, 3, 1, 2500, 7][(s * 3 + d * 5) % 5] }
    static func value(from s: Int, to d: Int, row: Int, col: Int) -> Float { Float(s * 1_000_000 + d * 100_000 + row * 10 + col % 10) }

    /// One all-to-all: the exchanged counts and received rows must be exactly what every peer sent.
    static func exchange(_ c: Communicator, rowSize: Int) throws -> [String] {
        let n = c.worldSize, me = c.rank
        var send = [Int](repeating: 0, count: n), recv = [Int](repeating: -1, count: n)
        for d in 0..<n { send[d] = rows(from: me, to: d) }
        try c.exchangeCounts(send, into: &recv)
        var failures: [String] = []
        for s in 0..<n where recv[s] != rows(from: s, to: me) {
            failures.append("rank \(me) expects \(recv[s]) rows from \(s), sent \(rows(from: s, to: me))")
        }
        if !failures.isEmpty { return failures }
        var input: [Float] = []
        for d in 0..<n {
            for r in 0..<send[d] { for col in 0..<rowSize { input.append(value(from: me, to: d, row: r, col: col)) } }
        }
        let total = recv.reduce(0, +)
        // One guard row past the exact size: it must stay untouched.
        var output = [Float](repeating: -1, count: (total + 1) * rowSize)
        try input.withUnsafeBufferPointer { i in
            try output.withUnsafeMutableBufferPointer { o in
                try c.allToAllV(
                    i.baseAddress ?? UnsafePointer(o.baseAddress!), sendCounts: send, rowSize: rowSize, into: o.baseAddress!,
                    recvCounts: recv)
            }
        }
        var k = 0
        for s in 0..<n {
            for r in 0..<recv[s] {
                for col in 0..<rowSize where output[k * rowSize + col] != value(from: s, to: me, row: r, col: col) {
                    failures.append("rank \(me): row \(r) from \(s) col \(col) is \(output[k * rowSize + col])")
                    break
                }
                k += 1
            }
        }
        if output[total * rowSize..<(total + 1) * rowSize].contains(where: { $0 != -1 }) {
            failures.append("rank \(me) wrote past its rows")
        }
        return failures
    }

    func testSharedMemoryAllToAll() {
        for n in [2, 3, 4] {
            let name = uniqueName()
            assertAllPass(
                onRanks(n) { r in
                    let c = try SharedMemoryCommunicator(
                        name: name, rank: r, worldSize: n, slotBytes: 64 << 10, mailboxBytes: 32 << 10, timeout: 60, spinCount: 200)
                    // Twice in a row: consecutive calls reuse the mailboxes in order.
                    return try Self.exchange(c, rowSize: 24) + Self.exchange(c, rowSize: 5)
                })
        }
    }

    func testTCPAllToAll() throws {
        for n in [2, 3] {
            let listener = try TCPCommunicator.makeListener(host: "127.0.0.1")
            assertAllPass(
                onRanks(n) { r in
                    let c = try self.joinTCP(r, of: n, listener: listener)
                    return try Self.exchange(c, rowSize: 24) + Self.exchange(c, rowSize: 5)
                })
        }
    }

    func testSingleRankCopiesItsOwnRows() throws {
        XCTAssertEqual(try Self.exchange(SingleRankCommunicator(), rowSize: 3), [])
    }

    /// A peer that never joins the all-to-all: the waiting rank fails within its timeout, naming the peer
    /// (a group communicator names the global worker rank).
    func testAbsentPeerTimesOutNamingIt() {
        let name = uniqueName()
        let results = onRanks(2) { r -> [String] in
            let shm = try SharedMemoryCommunicator(
                name: name, rank: r, worldSize: 2, slotBytes: 64 << 10, mailboxBytes: 32 << 10, timeout: 0.5, spinCount: 100)
            let c = GroupCommunicator(shm, group: ProcessGroup(name: "ep", ranks: [4, 7]))
            if r == 1 { return [] }  // never takes part
            let start = Date()
            do {
                _ = try Self.exchange(c, rowSize: 8)
                return ["the all-to-all returned without its peer"]
            } catch CommunicatorError.timeout(let rank, _, _) {
                let waited = Date().timeIntervalSince(start)
                return rank == 7 && waited < 5 ? [] : ["timeout named rank \(rank) after \(waited) s"]
            }
        }
        assertAllPass(results)
    }
}
