import XCTest
@testable import PagodaRouter

final class LoadBalancerTests: XCTestCase {
    let three = (0..<3).map { BackendAddress(host: "127.0.0.1", port: 9000 + $0) }

    private func check(_ balancer: LoadBalancer, file: StaticString = #filePath, line: UInt = #line) {
        // Invariant: in-flight figures are never negative and are zero when nothing is open.
        for backend in balancer.backends {
            XCTAssertGreaterThanOrEqual(backend.inFlightRequests, 0, file: file, line: line)
            XCTAssertGreaterThanOrEqual(backend.inFlightCost, -1e-9, file: file, line: line)
        }
        if balancer.openLeaseCount == 0 {
            XCTAssertEqual(balancer.backends.map(\.inFlightCost), [Double](repeating: 0, count: balancer.backends.count),
                           file: file, line: line)
        }
    }

    func testLeastCostSendsEachRequestToTheLeastLoadedBackend() {
        var balancer = LoadBalancer(backends: three)
        // An idle start spreads over all backends.
        let a = balancer.acquire(.init(cost: 1000))!
        let b = balancer.acquire(.init(cost: 10))!
        let c = balancer.acquire(.init(cost: 10))!
        XCTAssertEqual(Set([a.backend, b.backend, c.backend]), [0, 1, 2])
        // The next short ones avoid the backend holding the long one.
        for _ in 0..<20 {
            let lease = balancer.acquire(.init(cost: 10))!
            XCTAssertNotEqual(lease.backend, a.backend)
        }
        XCTAssertEqual(balancer.backends[a.backend].inFlightCost, 1000)
        XCTAssertEqual(balancer.backends[b.backend].inFlightCost + balancer.backends[c.backend].inFlightCost, 220)
        check(balancer)
    }

    func testAlternatingLongAndShortStaysBalancedWhereRoundRobinDoesNot() {
        func spread(_ policy: BalancingPolicy) -> [Double] {
            var balancer = LoadBalancer(backends: Array(three.prefix(2)), policy: policy)
            for i in 0..<40 { _ = balancer.acquire(.init(cost: i % 2 == 0 ? 500 : 5)) }
            return balancer.backends.map(\.inFlightCost)
        }
        let leastCost = spread(.leastCost)
        XCTAssertLessThanOrEqual(abs(leastCost[0] - leastCost[1]), 500)
        let roundRobin = spread(.roundRobin)
        XCTAssertEqual(roundRobin, [10_000, 100])  // every long request lands on backend 0
    }

    func testReleaseHappensExactlyOnce() {
        var balancer = LoadBalancer(backends: three)
        let lease = balancer.acquire(.init(cost: 42.5))!
        XCTAssertEqual(balancer.backends[lease.backend].inFlightRequests, 1)
        XCTAssertTrue(balancer.release(lease, outcome: .completed))
        XCTAssertFalse(balancer.release(lease, outcome: .completed))
        XCTAssertFalse(balancer.release(lease, outcome: .backendFailed))
        XCTAssertEqual(balancer.backends[lease.backend].inFlightRequests, 0)
        XCTAssertEqual(balancer.backends[lease.backend].failures, 0)
        check(balancer)
    }

    func testFractionalCostsReturnToExactlyZero() {
        var balancer = LoadBalancer(backends: [three[0]])
        let leases = (0..<100).map { _ in balancer.acquire(.init(cost: 0.1))! }
        for lease in leases.reversed() { balancer.release(lease, outcome: .completed) }
        XCTAssertEqual(balancer.backends[0].inFlightCost, 0)
    }

    func testFailedOutcomeCountsAFailure() {
        var balancer = LoadBalancer(backends: three)
        let lease = balancer.acquire(.init(cost: 1))!
        balancer.release(lease, outcome: .backendFailed)
        XCTAssertEqual(balancer.backends[lease.backend].failures, 1)
    }

    func testExcludedAndUnhealthyBackendsGetNothing() {
        var balancer = LoadBalancer(backends: three)
        balancer.connectionFailed(backend: 1, error: "connection refused")
        XCTAssertFalse(balancer.backends[1].health.isHealthy)
        for _ in 0..<10 {
            let lease = balancer.acquire(.init(cost: 1), excluding: [0])!
            XCTAssertEqual(lease.backend, 2)
        }
        XCTAssertNil(balancer.acquire(.init(cost: 1), excluding: [0, 2]))
        XCTAssertEqual(balancer.rejected, 1)
        XCTAssertEqual(balancer.retries, 10)
        // A successful probe brings it back.
        XCTAssertEqual(balancer.probeResult(backend: 1, error: nil), .healthy)
        XCTAssertEqual(balancer.acquire(.init(cost: 1), excluding: [0, 2])?.backend, 1)
    }

    func testRoundRobinSkipsUnhealthyAndKeepsTurnOrder() {
        var balancer = LoadBalancer(backends: three, policy: .roundRobin)
        XCTAssertEqual((0..<6).map { _ in balancer.acquire(.init(cost: 1))!.backend }, [0, 1, 2, 0, 1, 2])
        balancer.connectionFailed(backend: 1, error: "down")
        XCTAssertEqual((0..<4).map { _ in balancer.acquire(.init(cost: 1))!.backend }, [0, 2, 0, 2])
    }

    func testLeastRequestsCountsRequestsNotCost() {
        var balancer = LoadBalancer(backends: Array(three.prefix(2)), policy: .leastRequests)
        let big = balancer.acquire(.init(cost: 10_000))!
        let small = balancer.acquire(.init(cost: 1))!
        XCTAssertNotEqual(big.backend, small.backend)
        // Equal request counts: the tie goes to the lower cost.
        XCTAssertEqual(balancer.acquire(.init(cost: 1))!.backend, small.backend)
        XCTAssertEqual(balancer.acquire(.init(cost: 1))!.backend, big.backend)
    }

    func testCacheAwareReturnsToTheBackendThatSawThePrefix() {
        var balancer = LoadBalancer(backends: three, policy: .cacheAware)
        let index = PrefixIndex(blockSize: 8)
        let system = String(repeating: "You are a helpful assistant. ", count: 8)
        let first = balancer.acquire(.init(cost: 100, prefixKeys: index.blockKeys((system + "Q1").utf8)))!
        balancer.release(first, outcome: .completed)
        // Load the affine backend a little (within the bound): affinity still wins over least cost.
        let others = Set([0, 1, 2]).subtracting([first.backend])
        XCTAssertEqual(balancer.acquire(.init(cost: 300), excluding: others)?.backend, first.backend)
        let second = balancer.acquire(.init(cost: 100, prefixKeys: index.blockKeys((system + "Q2, a different question").utf8)))!
        XCTAssertEqual(second.backend, first.backend)
        XCTAssertEqual(balancer.affinityHits, 1)
        // An unrelated prompt goes by load.
        let other = balancer.acquire(.init(cost: 100, prefixKeys: index.blockKeys(String(repeating: "z", count: 200).utf8)))!
        XCTAssertNotEqual(other.backend, first.backend)
        XCTAssertEqual(balancer.affinityHits, 1)
    }

    func testCacheAwareGivesUpAffinityWhenTheBackendIsOverloaded() {
        var balancer = LoadBalancer(
            backends: Array(three.prefix(2)), policy: .cacheAware,
            affinity: .init(cacheThreshold: 0.5, balanceAbsThreshold: 100, balanceRelThreshold: 1.5))
        let keys = PrefixIndex(blockSize: 4).blockKeys(Array("shared prefix shared prefix".utf8))
        let first = balancer.acquire(.init(cost: 10, prefixKeys: keys))!
        // Pile load on the affine backend: 10 + 500 in flight vs 0.
        _ = balancer.acquire(.init(cost: 500), excluding: [1 - first.backend])
        let next = balancer.acquire(.init(cost: 10, prefixKeys: keys))!
        XCTAssertNotEqual(next.backend, first.backend)
        XCTAssertEqual(balancer.affinityHits, 0)
    }

    func testUnhealthyBackendLosesItsPrefixes() {
        var balancer = LoadBalancer(backends: Array(three.prefix(2)), policy: .cacheAware)
        let keys = PrefixIndex(blockSize: 4).blockKeys(Array("abcdefghijklmnop".utf8))
        let first = balancer.acquire(.init(cost: 10, prefixKeys: keys))!
        balancer.release(first, outcome: .completed)
        balancer.connectionFailed(backend: first.backend, error: "gone")
        balancer.probeResult(backend: first.backend, error: nil)
        var copy = balancer.prefixIndex
        XCTAssertNil(copy.longestMatch(keys))
    }

    func testRandomEventSequencesKeepTheAccounting() {
        var generator = SystemRandomNumberGenerator()
        var balancer = LoadBalancer(backends: three, policy: .cacheAware)
        var open: [LoadBalancer.Lease] = []
        for _ in 0..<5_000 {
            switch Int.random(in: 0..<10, using: &generator) {
            case 0..<5:
                let keys = PrefixIndex(blockSize: 2).blockKeys(Array("p\(Int.random(in: 0..<5))xyz".utf8))
                if let lease = balancer.acquire(.init(cost: Double(Int.random(in: 1...900)) / 3, prefixKeys: keys)) {
                    open.append(lease)
                }
            case 5..<8 where !open.isEmpty:
                let lease = open.remove(at: Int.random(in: 0..<open.count))
                XCTAssertTrue(balancer.release(lease, outcome: [.completed, .abandoned, .backendFailed].randomElement()!))
                XCTAssertFalse(balancer.release(lease, outcome: .completed))
            case 8:
                let backend = Int.random(in: 0..<3)
                balancer.probeResult(backend: backend, error: Bool.random() ? nil : "timeout")
            default:
                break
            }
            for (i, backend) in balancer.backends.enumerated() {
                let mine = open.filter { $0.backend == i }
                XCTAssertEqual(backend.inFlightRequests, mine.count)
                XCTAssertEqual(backend.inFlightCost, mine.map(\.cost).reduce(0, +), accuracy: 1e-6)
            }
        }
        for lease in open { balancer.release(lease, outcome: .abandoned) }
        check(balancer)
    }
}
