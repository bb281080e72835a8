import XCTest

final class PagodaEngineTestsPlaceholder: XCTestCase {}
