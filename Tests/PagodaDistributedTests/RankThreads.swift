import Foundation
import XCTest

@testable import PagodaDistributed

/// Ranks as threads of this test process: each test's group gets its own shared-memory name, runs one body
/// per rank, and checks that every rank reported no failures.
extension XCTestCase {
    private static let names = NameCounter()

    /// A shared-memory name no other group of this process uses.
    func uniqueName() -> String { "/pagoda-test-\(getpid())-\(Self.names.next())" }

    /// Runs `body(rank)` on `n` threads; returns each rank's result or error.
    func onRanks(_ n: Int, _ body: @escaping (Int) throws -> [String]) -> [Result<[String], Error>] {
        let box = RankResults(count: n)
        let lock = NSLock()
        let group = DispatchGroup()
        for r in 0..<n {
            group.enter()
            let t = Thread {
                let res = Result { try body(r) }
                lock.lock()
                box.results[r] = res
                lock.unlock()
                group.leave()
            }
            t.stackSize = 1 << 22
            t.start()
        }
        XCTAssertEqual(group.wait(timeout: .now() + 120), .success)
        return box.results.map { $0 ?? .failure(CommunicatorError.invalidArgument("rank did not finish")) }
    }

    /// Rank `r` of a loopback TCP group of `n` whose rank 0 accepts on `listener` (closed once joined).
    func joinTCP(_ r: Int, of n: Int, listener: (fd: Int32, port: Int)) throws -> Communicator {
        guard r == 0 else {
            return try TCPCommunicator(host: "127.0.0.1", port: listener.port, rank: r, worldSize: n, secret: rankThreadsSecret, timeout: 60)
        }
        defer { close(listener.fd) }
        return try TCPCommunicator(listener: listener, worldSize: n, secret: rankThreadsSecret, timeout: 60)
    }

    /// Every rank succeeded with an empty list of failures.
    func assertAllPass(_ results: [Result<[String], Error>], file: StaticString = #filePath, line: UInt = #line) {
        for (r, res) in results.enumerated() {
            switch res {
            case .success(let failures): XCTAssertEqual(failures, [], "rank \(r)", file: file, line: line)
            case .failure(let e): XCTFail("rank \(r): \(e)", file: file, line: line)
            }
        }
    }
}

/// The secret of the loopback TCP groups `joinTCP` forms.
let rankThreadsSecret = PeerSecret.random()

/// Each rank thread's result, filled under a lock.
private final class RankResults: @unchecked Sendable {
    var results: [Result<[String], Error>?]
    init(count: Int) { results = Array(repeating: nil, count: count) }
}

/// A process-wide counter for shared-memory names.
private final class NameCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}
