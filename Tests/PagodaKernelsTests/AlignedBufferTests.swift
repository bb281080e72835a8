import Foundation
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

    /// A buffer asked for huge pages gets them for its whole 2 MiB pages once written (where the kernel offers
    /// transparent huge pages on `madvise`), and only for those: a partly used tail page stays in small pages.
    func testHugePageBuffersAreBackedByHugePagesWhereTheKernelOffersThem() throws {
        let setting = (try? String(contentsOfFile: "/sys/kernel/mm/transparent_hugepage/enabled", encoding: .utf8)) ?? ""
        let bytes = 3 * huge + huge / 2
        let b = try AlignedBuffer<UInt8>(hugePagesCapacity: bytes)
        XCTAssertEqual(UInt(bitPattern: b.pointer) % UInt(huge), 0)
        for i in stride(from: 0, to: bytes, by: 4096) { XCTAssertEqual(b.pointer[i], 0); b.pointer[i] = 1 }
        guard setting.contains("[madvise]") || setting.contains("[always]") else {
            throw XCTSkip("transparent huge pages are off here (\(setting.trimmingCharacters(in: .whitespacesAndNewlines)))")
        }
        let kib = try Self.anonHugePagesKiB(containing: UnsafeRawPointer(b.pointer))
        // The three whole pages (the kernel may fall back to small pages under fragmentation, so at least one),
        // never the half-used fourth.
        XCTAssertGreaterThan(kib, 0)
        XCTAssertLessThanOrEqual(kib, 3 * huge / 1024)
    }

    /// `AnonHugePages` of the mapping of this process that contains `p` (/proc/self/smaps).
    private static func anonHugePagesKiB(containing p: UnsafeRawPointer) throws -> Int {
        // Read to the end (a /proc file reports size 0, which `String(contentsOfFile:)` may take at its word).
        let handle = try XCTUnwrap(FileHandle(forReadingAtPath: "/proc/self/smaps"))
        defer { try? handle.close() }
        let smaps = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
        let address = UInt(bitPattern: p)
        var inside = false
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if let range = fields.first, range.contains("-"), !range.hasSuffix(":") {
                let ends = range.split(separator: "-").compactMap { UInt($0, radix: 16) }
                inside = ends.count == 2 && ends[0] <= address && address < ends[1]
            } else if inside, fields.first == "AnonHugePages:", fields.count >= 2, let kib = Int(fields[1]) {
                return kib
            }
        }
        XCTFail("no mapping holds \(p)")
        return 0
    }
}
