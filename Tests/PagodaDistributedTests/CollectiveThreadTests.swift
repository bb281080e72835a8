import Foundation
import XCTest

@testable import PagodaDistributed

/// Every collective over shared memory and TCP equals the single-process result, ranks as threads of
/// this process (the separate-process runs are in MultiProcessCollectiveTests).
final class CollectiveThreadTests: XCTestCase {
    /// The TCP groups' secret.
    static let secret = PeerSecret.random()

    func testSharedMemoryTwoAndFourRanks() {
        for n in [2, 4] {
            let name = uniqueName()
            assertAllPass(
                onRanks(n) { r in
                    // A small segment (64 KiB slots) so that large collectives go through many chunks.
                    let c = try SharedMemoryCommunicator(
                        name: name, rank: r, worldSize: n, slotBytes: 64 << 10, mailboxBytes: 32 << 10, timeout: 60, spinCount: 200)
                    return try CollectiveSelfTest.run(c)
                })
        }
    }

    func testTCPTwoAndFourRanks() throws {
        for n in [2, 4] {
            let listener = try TCPCommunicator.makeListener(host: "127.0.0.1")
            assertAllPass(
                onRanks(n) { r in
                    let c: Communicator
                    if r == 0 {
                        c = try TCPCommunicator(listener: listener, worldSize: n, secret: Self.secret, timeout: 60)
                        close(listener.fd)
                    } else {
                        c = try TCPCommunicator(
                            host: "127.0.0.1", port: listener.port, rank: r, worldSize: n, secret: Self.secret, timeout: 60)
                    }
                    return try CollectiveSelfTest.run(c)
                })
        }
    }

    /// A stranger that connects to rank 0 first without the secret is refused; the real rank still joins.
    func testTCPRendezvousRefusesAStrangerAndStillFormsTheGroup() throws {
        let listener = try TCPCommunicator.makeListener(host: "127.0.0.1")
        let strangerDone = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var strangerError: Error?
        Thread {
            do {
                _ = try TCPCommunicator(host: "127.0.0.1", port: listener.port, rank: 1, worldSize: 2, secret: .random(), timeout: 10)
            } catch {
                strangerError = error
            }
            strangerDone.signal()
        }.start()
        usleep(200_000)  // the stranger is first in the listener's queue
        assertAllPass(
            onRanks(2) { r in
                let c: Communicator
                if r == 0 {
                    c = try TCPCommunicator(listener: listener, worldSize: 2, secret: Self.secret, timeout: 30)
                    close(listener.fd)
                } else {
                    usleep(300_000)
                    c = try TCPCommunicator(host: "127.0.0.1", port: listener.port, rank: 1, worldSize: 2, secret: Self.secret, timeout: 30)
                }
                return try CollectiveSelfTest.run(c, counts: [1, 4097])
            })
        strangerDone.wait()
        XCTAssertTrue("\(strangerError.map { "\($0)" } ?? "joined")".contains("wrong secret"), "\(String(describing: strangerError))")
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
        XCTAssertThrowsError(
            try SharedMemoryCommunicator(name: name, rank: 0, worldSize: 2, slotBytes: 64 << 10, mailboxBytes: 4096, timeout: 0.3)
        ) { e in
            XCTAssertEqual(e as? CommunicatorError, .timeout(rank: 1, seconds: 0.3, operation: "join"))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/dev/shm" + name))
        // A closed TCP peer is peerDied(rank:).
        let listener = try TCPCommunicator.makeListener(host: "127.0.0.1")
        let results = onRanks(2) { r in
            if r == 0 {
                let c = try TCPCommunicator(listener: listener, worldSize: 2, secret: Self.secret, timeout: 10)
                close(listener.fd)
                var x: Float = 1
                do { try c.allReduceSum(&x, count: 1) } catch let e as CommunicatorError { return ["\(e)"] }
                return ["no error"]
            } else {
                _ = try TCPCommunicator(host: "127.0.0.1", port: listener.port, rank: 1, worldSize: 2, secret: Self.secret, timeout: 10)
                return []  // leaves: the communicator closes its sockets
            }
        }
        guard case .success(let msgs) = results[0] else { return XCTFail("rank 0 failed: \(results[0])") }
        XCTAssertEqual(msgs.count, 1)
        XCTAssertTrue(msgs[0].hasPrefix("rank 1 died"), msgs[0])
    }
}
