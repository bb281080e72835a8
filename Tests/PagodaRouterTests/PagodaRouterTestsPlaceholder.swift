import XCTest

final class PagodaRouterTestsPlaceholder: XCTestCase {}
