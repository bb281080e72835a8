import XCTest

final class PagodaModelTestsPlaceholder: XCTestCase {}
