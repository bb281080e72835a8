import XCTest

final class PagodaTokenizerTestsPlaceholder: XCTestCase {}
