import XCTest
@testable import PagodaRouter

final class BackendHealthTests: XCTestCase {
    func testProbeFailuresTakeItDownAfterTheThreshold() {
        var health = BackendHealth(unhealthyAfter: 2, healthyAfter: 1)
        XCTAssertTrue(health.isHealthy)
        XCTAssertNil(health.probeFailed("timeout"))
        XCTAssertTrue(health.isHealthy)
        XCTAssertEqual(health.probeFailed("timeout"), .unhealthy)
        XCTAssertEqual(health.lastError, "timeout")
        XCTAssertNil(health.probeFailed("timeout"))
        XCTAssertEqual(health.probeSucceeded(), .healthy)
        XCTAssertNil(health.lastError)
    }

    func testASuccessInBetweenResetsTheCount() {
        var health = BackendHealth(unhealthyAfter: 2)
        health.probeFailed("x")
        health.probeSucceeded()
        XCTAssertNil(health.probeFailed("x"))
        XCTAssertTrue(health.isHealthy)
    }

    func testConnectionFailureIsImmediate() {
        var health = BackendHealth(unhealthyAfter: 3, healthyAfter: 2)
        XCTAssertEqual(health.connectionFailed("refused"), .unhealthy)
        XCTAssertNil(health.probeSucceeded())
        XCTAssertFalse(health.isHealthy)
        XCTAssertEqual(health.probeSucceeded(), .healthy)
    }
}
