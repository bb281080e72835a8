import Foundation
import XCTest

@testable import PagodaDistributed

/// Every collective over shared memory and TCP equals the single-process result, ranks as threads of
/// this process (the separate-process runs are in MultiProcessCollectiveTests).
final class CollectiveThreadTests: XCTestCase {
    func testSharedMemoryTwoAndFourRanks() {
        for n in [2, 4] {
            let name = uniqueName()
            assertAllPass(onRanks(n) { r in
                // A small segment (64 KiB slots) so that large collectives go through many chunks.
                let c = try SharedMemoryCommunicator(name: name, rank: r, worldSize: n, slotBytes: 64 << 10, mailboxBytes: 32 << 10, timeout: 60, spinCount: 200)
                return try CollectiveSelfTest.run(c)
            })
        }
    }

    func testTCPTwoAndFourRanks() throws {
        for n in [2, 4] {
            let listener = try TCPCommunicator.makeListener(host: "127.0.0.1")
            assertAllPass(onRanks(n) { r in
                let c = try self.joinTCP(r, of: n, listener: listener)
                return try CollectiveSelfTest.run(c)
            })
        }
    }

    func testSharedMemorySegmentNameIsRemovedAfterJoin() throws {
        let name = uniqueName()
        _ = onRanks(2) { r in
            let c = try SharedMemoryCommunicator(name: name, rank: r, worldSize: 2, slotBytes: 64 << 10, mailboxBytes: 4096, timeout: 30)
            try c.barrier()
            return []
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/dev/shm" + name))
    }

    func testMissingPeerIsATimeoutNamingTheRank() throws {
        let name = uniqueName()
        // Rank 1 of 2 never joins: rank 0 must give up with a typed error naming rank 1.
        XCTAssertThrowsError(try SharedMemoryCommunicator(name: name, rank: 0, worldSize: 2, slotBytes: 64 << 10, mailboxBytes: 4096, timeout: 0.3)) { e in
            XCTAssertEqual(e as? CommunicatorError, .timeout(rank: 1, seconds: 0.3, operation: "join"))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/dev/shm" + name))
        // A closed TCP peer is peerDied(rank:).
        let listener = try TCPCommunicator.makeListener(host: "127.0.0.1")
        let results = onRanks(2) { r in
            if r == 0 {
                let c = try TCPCommunicator(listener: listener, worldSize: 2, timeout: 10)
                close(listener.fd)
                var x: Float = 1
                do { try c.allReduceSum(&x, count: 1) } catch let e as CommunicatorError { return ["\(e)"] }
                return ["no error"]
            } else {
                _ = try TCPCommunicator(host: "127.0.0.1", port: listener.port, rank: 1, worldSize: 2, timeout: 10)
                return []  // leaves: the communicator closes its sockets
            }
        }
        guard case .success(let msgs) = results[0] else { return XCTFail("rank 0 failed: \(results[0])") }
        XCTAssertEqual(msgs.count, 1)
        XCTAssertTrue(msgs[0].hasPrefix("rank 1 died"), msgs[0])
    }
}
