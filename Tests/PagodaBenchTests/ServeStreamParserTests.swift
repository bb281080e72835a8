import XCTest

@testable import PagodaBench

final class ServeStreamParserTests: XCTestCase {
    func testEventsSplitAcrossPieces() {
        var parser = ServeStreamParser()
        let stream = "data: {\"a\":1}\n\n: ping\n\ndata: {\"b\":\n2}\r\n\r\nevent: x\ndata: [DONE]\n\n"
        var payloads: [String] = []
        let bytes = Array(stream.utf8)
        var i = 0
        while i < bytes.count {  // feed 3 bytes at a time
            payloads += parser.add(bytes[i..<min(i + 3, bytes.count)])
            i += 3
        }
        payloads += parser.finish()
        XCTAssertEqual(payloads, ["{\"a\":1}", "{\"b\":", "[DONE]"])
    }

    func testUnterminatedLastEvent() {
        var parser = ServeStreamParser()
        XCTAssertEqual(parser.add(Array("data: {\"x\":1}\n\ndata: [DONE]".utf8)), ["{\"x\":1}"])
        XCTAssertEqual(parser.finish(), ["[DONE]"])
    }
}
