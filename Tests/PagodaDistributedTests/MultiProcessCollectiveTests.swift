import Foundation
import XCTest

@testable import PagodaDistributed

/// The collective self-test with each rank a separate process: this test binary re-runs itself with a
/// filter selecting `testChildRank`, which acts as one rank when PAGODA_SELFTEST_RANK is set.
final class MultiProcessCollectiveTests: XCTestCase {
    /// Child entry: does nothing in a normal test run.
    func testChildRank() throws {
        let env = ProcessInfo.processInfo.environment
        guard let rankS = env["PAGODA_SELFTEST_RANK"], let rank = Int(rankS), let n = env["PAGODA_SELFTEST_WORLD"].flatMap(Int.init),
            let addr = env["PAGODA_SELFTEST_ADDRESS"]
        else { return }
        let secret = try PeerSecret(text: env["PAGODA_SELFTEST_SECRET"] ?? "")
        let comm = try CommunicatorAddress(parsing: addr).connect(rank: rank, worldSize: n, secret: secret, timeout: 60)
        let failures = try CollectiveSelfTest.run(comm, counts: [1, 17, 4097, 1 << 22])
        XCTAssertEqual(failures, [])
        if failures.isEmpty { print("SELFTEST-OK rank \(rank) of \(n) pid \(getpid())") }
        if env["PAGODA_SELFTEST_DIE"] == "\(rank)" { exit(3) }
        if env["PAGODA_SELFTEST_DIE"] != nil {
            // The others wait for the dying rank in one more all-reduce and must see peerDied naming it.
            var x: Float = 1
            do {
                try comm.allReduceSum(&x, count: 1)
                XCTFail("all-reduce with a dead rank returned")
            } catch let e as CommunicatorError {
                guard case .peerDied(let r, _) = e else { return XCTFail("expected peerDied, got \(e)") }
                print("PEER-DIED \(r)")
            }
        }
    }

    func spawnRanks(_ n: Int, address: String, die: Int? = nil) throws -> [(status: Int32, output: String)] {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var procs: [(Process, Pipe)] = []
        let secret = PeerSecret.random()
        for r in 0..<n {
            let p = Process()
            p.executableURL = exe
            p.arguments = ["PagodaDistributedTests.MultiProcessCollectiveTests/testChildRank"]
            var env = ProcessInfo.processInfo.environment
            env["PAGODA_SELFTEST_RANK"] = "\(r)"
            env["PAGODA_SELFTEST_WORLD"] = "\(n)"
            env["PAGODA_SELFTEST_ADDRESS"] = address
            env["PAGODA_SELFTEST_SECRET"] = secret.text
            if let die { env["PAGODA_SELFTEST_DIE"] = "\(die)" }
            p.environment = env
            let pipe = Pipe()
            p.standardOutput = pipe
            p.standardError = pipe
            try p.run()
            procs.append((p, pipe))
        }
        let deadline = Date().addingTimeInterval(120)
        var out: [(Int32, String)] = []
        for (p, pipe) in procs {
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            while p.isRunning && Date() < deadline { usleep(10_000) }
            if p.isRunning { p.terminate() }
            p.waitUntilExit()
            out.append((p.terminationStatus, String(decoding: data, as: UTF8.self)))
        }
        return out
    }

    func testSharedMemoryAcrossProcesses() throws {
        for n in [2, 4] {
            let results = try spawnRanks(n, address: "shm:/pagoda-mp-\(getpid())-\(n)")
            for (r, res) in results.enumerated() {
                XCTAssertEqual(res.status, 0, "rank \(r) of \(n):\n\(res.output)")
                XCTAssertTrue(res.output.contains("SELFTEST-OK rank \(r) of \(n)"), res.output)
            }
        }
    }

    func testTCPAcrossProcesses() throws {
        // Ask the kernel for a free port, then hand it to rank 0 (which binds it with SO_REUSEADDR).
        let l = try TCPCommunicator.makeListener(host: "127.0.0.1")
        close(l.fd)
        let results = try spawnRanks(2, address: "tcp:127.0.0.1:\(l.port)")
        for (r, res) in results.enumerated() {
            XCTAssertEqual(res.status, 0, "rank \(r):\n\(res.output)")
            XCTAssertTrue(res.output.contains("SELFTEST-OK rank \(r) of 2"), res.output)
        }
    }

    func testDeadProcessIsNamedByItsPeers() throws {
        let results = try spawnRanks(2, address: "shm:/pagoda-mp-\(getpid())-die", die: 1)
        XCTAssertEqual(results[1].status, 3)
        XCTAssertEqual(results[0].status, 0, results[0].output)
        XCTAssertTrue(results[0].output.contains("PEER-DIED 1"), results[0].output)
    }
}
