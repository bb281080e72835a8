import Foundation
import XCTest

@testable import PagodaModel

/// Crafted safetensors headers are load errors naming the file and the tensor, never a crash.
final class SafetensorsHeaderTests: XCTestCase {
    private func write(header: String, dataBytes: Int) throws -> String {
        let path = NSTemporaryDirectory() + "pagoda-st-\(UUID().uuidString).safetensors"
        var bytes = [UInt8]()
        let h = Array(header.utf8)
        withUnsafeBytes(of: UInt64(h.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes += h + [UInt8](repeating: 0, count: dataBytes)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testShapeWhoseSizeOverflowsIsAnError() throws {
        let path = try write(header: #"{"w": {"dtype": "F32", "shape": [1099511627776, 1099511627776], "data_offsets": [0, 4]}}"#, dataBytes: 4)
        XCTAssertThrowsError(try SafetensorsFile(path: path)) { error in
            XCTAssertEqual("\(error)", "\(path): invalid safetensors file: tensor w: shape [1099511627776, 1099511627776] overflows")
        }
    }

    func testWellFormedHeaderLoads() throws {
        let path = try write(header: #"{"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}"#, dataBytes: 24)
        let file = try SafetensorsFile(path: path)
        XCTAssertEqual(file.tensors["w"]?.shape, [2, 3])
    }
}
