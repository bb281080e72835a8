import XCTest

@testable import PagodaKernels

/// Large buffers (KV caches) start on a 2 MiB boundary and fill whole 2 MiB pages, so transparent huge
/// pages can back all of them; small ones keep their 64-byte alignment. Every byte is zero and writable.
final class AlignedBufferTests: XCTestCase {
    private let huge = 2 << 20

    func testBuffersOfTwoMiBOrMoreStartOnAHugePageAndAreZeroAndWritable() throws {
        for floats in [huge / 4, huge / 4 + 1, 3 * huge / 4 + 5, 5 * huge / 4 - 3] {
            let b = try AlignedBuffer<Float>(exactCapacity: floats)
            XCTAssertEqual(UInt(bitPattern: b.pointer) % UInt(huge), 0, "\(floats) floats")
            XCTAssertEqual(b.pointer[0], 0)
            XCTAssertEqual(b.pointer[floats - 1], 0)
            b.pointer[floats - 1] = 7  // the last float is mapped
            XCTAssertEqual(b.pointer[floats - 1], 7)
            XCTAssertEqual(AlignedBuffer<Float>.mappedBytes(floats * 4) % huge, 0)
            XCTAssertGreaterThanOrEqual(AlignedBuffer<Float>.mappedBytes(floats * 4), floats * 4)
        }
    }

    func testSmallerBuffersKeepTheirSizeAndAlignment() throws {
        for floats in [1, 100, (1 << 20) / 4, huge / 4 - 1] {
            let b = try AlignedBuffer<Float>(exactCapacity: floats)
            XCTAssertEqual(UInt(bitPattern: b.pointer) % 64, 0)
            XCTAssertEqual(b.pointer[floats - 1], 0)
            XCTAssertEqual(AlignedBuffer<Float>.mappedBytes(floats * 4), floats * 4)
        }
    }

    func testGrowingAHugeBufferRemapsItAligned() {
        let b = AlignedBuffer<Float>(capacity: 16)
        b.reserve(3 * huge / 4)
        XCTAssertEqual(UInt(bitPattern: b.pointer) % UInt(huge), 0)
        b.pointer[3 * huge / 4 - 1] = 1
        XCTAssertEqual(b.pointer[3 * huge / 4 - 1], 1)
    }
}
