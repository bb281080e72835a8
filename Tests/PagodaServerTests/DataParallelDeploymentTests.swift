import XCTest

@testable import PagodaServer

/// vLLM's multi-node data-parallel flags, checked together: the two seed layouts, and every combination vLLM
/// rejects as a one-line error naming the flags.
final class DataParallelDeploymentTests: XCTestCase {
    func testTwoRanksPerNode() throws {
        let head = try DataParallelDeployment(size: 4, sizeLocal: 2, address: "10.99.48.128", rpcPort: 13345)
        XCTAssertEqual(head.localRanks, 0..<2)
        XCTAssertEqual(head.remoteRanks, [2, 3])
        XCTAssertFalse(head.headless)
        let node = try DataParallelDeployment(size: 4, sizeLocal: 2, startRank: 2, headless: true, address: "10.99.48.128", rpcPort: 13345)
        XCTAssertEqual(node.localRanks, 2..<4)
        XCTAssertEqual(node.remoteRanks, [])
        XCTAssertEqual(node.address, "10.99.48.128")
        XCTAssertEqual(node.rpcPort, 13345)
    }

    func testAPIServerAloneOnTheHead() throws {
        let head = try DataParallelDeployment(size: 4, sizeLocal: 0, address: "10.99.48.128", rpcPort: 13345)
        XCTAssertEqual(head.localRanks, 0..<0)
        XCTAssertEqual(head.remoteRanks, [0, 1, 2, 3])
        let node = try DataParallelDeployment(size: 4, sizeLocal: 4, headless: true, address: "10.99.48.128", rpcPort: 13345)
        XCTAssertEqual(node.localRanks, 0..<4)
    }

    func testDefaultsAreVLLMs() throws {
        let one = try DataParallelDeployment(size: 2)
        XCTAssertEqual(one.localRanks, 0..<2)
        XCTAssertEqual(one.remoteRanks, [])
        XCTAssertEqual(one.rpcPort, 29550)
        XCTAssertEqual(one.address, "127.0.0.1")
        let external = try DataParallelDeployment(size: 4, rank: 3)
        XCTAssertEqual(external.localRanks, 3..<4)
        XCTAssertEqual(external.remoteRanks, [])
    }

    func testHybridLoadBalancing() throws {
        let second = try DataParallelDeployment(size: 4, sizeLocal: 2, startRank: 2, apiServerCount: 2, hybridLB: true)
        XCTAssertEqual(second.loadBalancing, .hybrid)
        XCTAssertEqual(second.localRanks, 2..<4)
        XCTAssertEqual(second.remoteRanks, [], "a hybrid server waits for no headless node")
        // vLLM infers hybrid from a start rank above 0 on a node with an API server.
        let inferred = try DataParallelDeployment(size: 4, sizeLocal: 2, startRank: 2)
        XCTAssertEqual(inferred.loadBalancing, .hybrid)
        XCTAssertEqual(inferred.localRanks, 2..<4)
        let first = try DataParallelDeployment(size: 4, sizeLocal: 2, startRank: 0, hybridLB: true)
        XCTAssertEqual(first.loadBalancing, .hybrid)
        XCTAssertEqual(first.remoteRanks, [])
        // One local rank is external load balancing (with vLLM's note); all ranks local is internal.
        let one = try DataParallelDeployment(size: 4, sizeLocal: 1, startRank: 3, hybridLB: true)
        XCTAssertEqual(one.loadBalancing, .external)
        XCTAssertEqual(one.localRanks, 3..<4)
        XCTAssertEqual(one.notes.count, 1)
        let all = try DataParallelDeployment(size: 2, sizeLocal: 2, hybridLB: true)
        XCTAssertEqual(all.loadBalancing, .internal)
        XCTAssertEqual(all.remoteRanks, [])
    }

    func testExternalAndHeadlessModes() throws {
        let external = try DataParallelDeployment(size: 2, rank: 1, apiServerCount: 2, externalLB: true)
        XCTAssertEqual(external.loadBalancing, .external)
        XCTAssertEqual(external.localRanks, 1..<2)
        // Without hybrid, fewer local ranks than the total on the head means headless nodes join (multi-node).
        let head = try DataParallelDeployment(size: 4, sizeLocal: 2)
        XCTAssertEqual(head.loadBalancing, .internal)
        XCTAssertEqual(head.remoteRanks, [2, 3])
        let node = try DataParallelDeployment(size: 4, sizeLocal: 2, startRank: 2, headless: true)
        XCTAssertEqual(node.loadBalancing, .internal)
        XCTAssertEqual(node.remoteRanks, [])
        XCTAssertEqual(try DataParallelDeployment(size: 2, apiServerCount: 4).loadBalancing, .internal)
    }

    func testRejectedCombinations() {
        let cases: [(String, () throws -> DataParallelDeployment)] = [
            (
                "--api-server-count 2 cannot be used with --headless",
                { try .init(size: 4, sizeLocal: 2, startRank: 2, headless: true, apiServerCount: 2) }
            ),
            (
                "--api-server-count 1 cannot be used with --headless",
                { try .init(size: 4, sizeLocal: 2, startRank: 2, headless: true, apiServerCount: 1) }
            ),
            ("invalid --api-server-count 0: must be at least 1 unless --headless", { try .init(size: 2, apiServerCount: 0) }),
            (
                "invalid --data-parallel-start-rank 4: must be less than --data-parallel-size 4",
                { try .init(size: 4, sizeLocal: 1, startRank: 4, headless: true) }
            ),
            ("invalid --data-parallel-size-local 5: must be at most --data-parallel-size 4", { try .init(size: 4, sizeLocal: 5) }),
            (
                "--data-parallel-start-rank 3 + --data-parallel-size-local 2 exceed --data-parallel-size 4",
                { try .init(size: 4, sizeLocal: 2, startRank: 3, headless: true) }
            ),
            ("--data-parallel-size-local must be at least 1 with --headless", { try .init(size: 4, sizeLocal: 0, headless: true) }),
            ("--data-parallel-rank cannot be used with --headless", { try .init(size: 4, rank: 1, headless: true) }),
            ("--data-parallel-size-local must be 1 when --data-parallel-rank is set", { try .init(size: 4, rank: 1, sizeLocal: 2) }),
            ("invalid --data-parallel-size-local -1: must not be negative", { try .init(size: 4, sizeLocal: -1) }),
            ("invalid --data-parallel-start-rank -2: must not be negative", { try .init(size: 4, startRank: -2, headless: true) }),
            ("invalid --data-parallel-size 0: must be at least 1", { try .init(size: 0) }),
            ("invalid --data-parallel-size -3: must be at least 1", { try .init(size: -3) }),
            ("invalid --data-parallel-rank 4: must be in 0..<4", { try .init(size: 4, rank: 4) }),
            ("invalid --data-parallel-rpc-port 70000", { try .init(size: 4, sizeLocal: 2, rpcPort: 70000) }),
            ("invalid --data-parallel-rpc-port 0", { try .init(size: 4, sizeLocal: 2, rpcPort: 0) }),
            ("invalid --api-server-count -1: must not be negative", { try .init(size: 2, apiServerCount: -1) }),
            ("cannot use more than one data-parallel load balancing mode", { try .init(size: 4, rank: 1, hybridLB: true) }),
            ("cannot use more than one data-parallel load balancing mode", { try .init(size: 4, rank: 1, startRank: 1) }),
            ("--data-parallel-external-lb needs --data-parallel-rank", { try .init(size: 2, externalLB: true) }),
            ("--data-parallel-hybrid-lb needs --data-parallel-size-local", { try .init(size: 2, hybridLB: true) }),
            ("--data-parallel-hybrid-lb needs --data-parallel-size-local", { try .init(size: 4, startRank: 2) }),
            (
                "--data-parallel-size-local must be at least 1 with --data-parallel-hybrid-lb",
                { try .init(size: 4, sizeLocal: 0, hybridLB: true) }
            ),
            (
                "--data-parallel-hybrid-lb cannot be used with --headless",
                { try .init(size: 4, sizeLocal: 2, startRank: 2, headless: true, hybridLB: true) }
            ),
            (
                "--data-parallel-start-rank 3 + --data-parallel-size-local 2 exceed --data-parallel-size 4",
                { try .init(size: 4, sizeLocal: 2, startRank: 3, hybridLB: true) }
            ),
            ("--api-server-count 2 with ranks on headless nodes", { try .init(size: 4, sizeLocal: 2, apiServerCount: 2) }),
            ("invalid --data-parallel-address: empty", { try .init(size: 4, sizeLocal: 2, address: "") }),
        ]
        for (needle, make) in cases {
            XCTAssertThrowsError(try make(), needle) { error in
                let text = "\(error)"
                XCTAssertTrue(text.hasPrefix(needle), "\(text) should start with \(needle)")
                XCTAssertFalse(text.contains("\n"), "one line: \(text)")
            }
        }
    }
}
