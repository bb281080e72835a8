import XCTest

final class PagodaKernelsTestsPlaceholder: XCTestCase {}
