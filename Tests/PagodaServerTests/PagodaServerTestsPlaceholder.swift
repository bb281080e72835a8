import XCTest

final class PagodaServerTestsPlaceholder: XCTestCase {}
