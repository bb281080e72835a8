import XCTest

final class PagodaBenchTestsPlaceholder: XCTestCase {}
