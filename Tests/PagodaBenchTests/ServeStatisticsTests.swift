import XCTest

@testable import PagodaBench

final class ServeStatisticsTests: XCTestCase {
    func testNumPyConventions() {
        let xs = [1.0, 2, 3, 4, 10]
        XCTAssertEqual(ServeStatistics.mean(xs), 4)
        XCTAssertEqual(ServeStatistics.median(xs), 3)
        // np.percentile([1,2,3,4,10], 99) = 4 + 0.96 * 6 = 9.76; np.std = sqrt(10) (population).
        XCTAssertEqual(ServeStatistics.percentile(xs, 99), 9.76, accuracy: 1e-12)
        XCTAssertEqual(ServeStatistics.percentile(xs, 25), 2)
        XCTAssertEqual(ServeStatistics.std(xs), 10.0.squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(ServeStatistics.median([1, 2, 3, 4]), 2.5)
        XCTAssertEqual(ServeStatistics.mean([]), 0)
        XCTAssertEqual(ServeStatistics.percentile([], 99), 0)
    }

    func testArrivalSchedule() {
        var rng = BenchRandom(seed: 0)
        XCTAssertEqual(ServeArrivalSchedule.delays(count: 4, requestRate: .infinity, burstiness: 1, rng: &rng), [0, 0, 0, 0])
        let poisson = ServeArrivalSchedule.delays(count: 200, requestRate: 10, burstiness: 1, rng: &rng)
        XCTAssertEqual(poisson.last!, 20, accuracy: 1e-9, "rescaled so the last request goes at count / rate")
        XCTAssertEqual(poisson, poisson.sorted())
        let gaps = zip(poisson.dropFirst(), poisson).map { $0 - $1 }
        XCTAssertGreaterThan(ServeStatistics.std(gaps), 0.05, "Poisson gaps vary")
        let even = ServeArrivalSchedule.delays(count: 5, requestRate: 2, burstiness: .infinity, rng: &rng)
        for (a, b) in zip(even, [0.5, 1, 1.5, 2, 2.5]) { XCTAssertEqual(a, b, accuracy: 1e-12) }
        // Gamma with small shape is burstier than Poisson.
        let bursty = ServeArrivalSchedule.delays(count: 400, requestRate: 10, burstiness: 0.2, rng: &rng)
        let burstyGaps = zip(bursty.dropFirst(), bursty).map { $0 - $1 }
        XCTAssertGreaterThan(ServeStatistics.std(burstyGaps), ServeStatistics.std(gaps))
    }

    func testGammaMean() {
        var rng = BenchRandom(seed: 11)
        for (shape, scale) in [(1.0, 0.5), (0.3, 2.0), (4.0, 0.25)] {
            let xs = (0..<20000).map { _ in rng.gamma(shape: shape, scale: scale) }
            XCTAssertEqual(ServeStatistics.mean(xs), shape * scale, accuracy: shape * scale * 0.05)
            XCTAssertTrue(xs.allSatisfy { $0 >= 0 })
        }
    }
}
