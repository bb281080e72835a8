import XCTest
@testable import PagodaRouter

final class ProxyMetricsTests: XCTestCase {
    func testEveryBackendFigureIsExposed() {
        var balancer = LoadBalancer(backends: [BackendAddress(host: "127.0.0.1", port: 9000),
                                               BackendAddress(host: "::1", port: 9001)])
        let lease = balancer.acquire(.init(cost: 12.5))!
        _ = balancer.acquire(.init(cost: 3))
        balancer.release(lease, outcome: .backendFailed)
        balancer.connectionFailed(backend: 1, error: "refused")
        let text = ProxyMetrics.render(balancer)
        XCTAssertTrue(text.contains("# TYPE pagoda_proxy_backend_in_flight_cost gauge\n"))
        XCTAssertTrue(text.contains(#"pagoda_proxy_backend_in_flight_requests{backend="127.0.0.1:9000",index="0"} 0"#))
        XCTAssertTrue(text.contains(#"pagoda_proxy_backend_in_flight_cost{backend="[::1]:9001",index="1"} 3"#))
        XCTAssertTrue(text.contains(#"pagoda_proxy_backend_routed_cost_total{backend="127.0.0.1:9000",index="0"} 12.5"#))
        XCTAssertTrue(text.contains(#"pagoda_proxy_backend_failures_total{backend="127.0.0.1:9000",index="0"} 1"#))
        XCTAssertTrue(text.contains(#"pagoda_proxy_backend_healthy{backend="[::1]:9001",index="1"} 0"#))
        XCTAssertTrue(text.contains("pagoda_proxy_requests_rejected_total 0\n"))
        // Every sample line is `name{labels} value` or `name value`.
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            XCTAssertNotNil(line.range(of: #"^[a-z_]+(\{[^}]*\})? [0-9.e+-]+$"#, options: .regularExpression), String(line))
        }
    }

    func testBackendListsAndErrors() throws {
        let list = try BackendAddress.list(dpHosts: ["127.0.0.1", "10.0.0.2"], dpPorts: [8000, 8001],
                                           backends: ["127.0.0.1:9000,[::1]:9001"])
        XCTAssertEqual(list.map(\.description), ["127.0.0.1:8000", "10.0.0.2:8001", "127.0.0.1:9000", "[::1]:9001"])
        XCTAssertEqual(list[3].baseURL, "http://[::1]:9001")
        XCTAssertThrowsError(try BackendAddress.list(dpHosts: ["a"], dpPorts: [], backends: [])) {
            XCTAssertEqual($0 as? RouterConfigError, .mismatchedHostsAndPorts(hosts: 1, ports: 0))
        }
        XCTAssertThrowsError(try BackendAddress.list(dpHosts: [], dpPorts: [], backends: []))
        XCTAssertThrowsError(try BackendAddress(parsing: "host:0"))
        XCTAssertThrowsError(try BackendAddress(parsing: "nohost"))
        XCTAssertThrowsError(try BackendAddress.list(dpHosts: ["a", "a"], dpPorts: [1, 1], backends: [])) {
            XCTAssertEqual($0 as? RouterConfigError, .duplicateBackend("a:1"))
        }
    }
}
