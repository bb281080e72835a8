import XCTest

final class PagodaDistributedTestsPlaceholder: XCTestCase {}
