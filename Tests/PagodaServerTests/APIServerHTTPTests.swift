import Foundation
import Logging
import XCTest
import PagodaEngine
import PagodaEngineTestSupport
import PagodaOpenAI
@testable import PagodaServer

/// The real HTTP server (Hummingbird on a loopback port) in front of the engine RPC and the test
/// engine: status codes and bodies of the error cases, API keys, SSE streaming, and a client that
/// disconnects mid-stream aborting its engine request.
final class APIServerHTTPTests: XCTestCase {
    var backend: TestEngineBackend!
    var serverTask: Task<Void, Error>!
    var port = 0

    func startServer(apiKey: String? = nil, maxBody: Int = 1 << 20) throws {
        backend = TestEngineBackend(stepInterval: 0.002)
        let h = EngineHandshake(model: "/models/test", numBlocks: 64, blockSize: 16, maxModelLen: 100_000, vocabSize: 0x11_0000,
                                eosTokenIds: [0], pid: 1)
        let client = AsyncEngineClient(rpc: try backend.serveOverRPC(h).client)
        var config = ServerConfig(servedModelNames: ["m"], modelPath: "/models/test")
        config.host = "127.0.0.1"; config.port = 0; config.apiKey = apiKey; config.maxRequestBodyBytes = maxBody
        config.disableLogRequests = true
        let serving = OpenAIServing(config: config, tokenizer: CharTokenizer(), engine: client,
                                    metrics: ServerMetrics(modelName: "m"), logger: Logger(label: "test"))
        client.start()
        let listening = expectation(description: "listening")
        let box = PortBox()
        serverTask = Task {
            try await APIServer(serving: serving, logger: Logger(label: "test")).run(shutdownOnSignals: false) { p in
                box.port = p; listening.fulfill()
            }
        }
        wait(for: [listening], timeout: 30)
        port = box.port
    }

    final class PortBox: @unchecked Sendable { var port = 0 }

    override func tearDown() {
        serverTask?.cancel()
    }

    /// One HTTP/1.1 exchange with `Connection: close`: (status, body).
    func http(_ method: String, _ path: String, body: [UInt8] = [], headers: [String: String] = [:]) throws -> (Int, String) {
        let fd = try connect()
        defer { close(fd) }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: \(body.count)\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        head += "\r\n"
        try send(fd, Array(head.utf8) + body)
        var response: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buf, buf.count)
            if n <= 0 { break }
            response += buf[0..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        let status = Int(text.split(separator: " ", maxSplits: 2)[1]) ?? 0
        let bodyText = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        return (status, bodyText)
    }

    func connect() throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var tv = timeval(tv_sec: 10, tv_usec: 0)  // no test waits forever on a read
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { throw TestBackendError(message: "connect failed") }
        return fd
    }

    func send(_ fd: Int32, _ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
            guard n > 0 else { throw TestBackendError(message: "write failed") }
            off += n
        }
    }

    func errorBody(_ body: String) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])?["error"] as? [String: Any]
    }

    func testErrorStatusesAndBodies() throws {
        try startServer(maxBody: 1000)
        var (status, body) = try http("POST", "/v1/completions", body: Array(#"{"model": "m", "prompt": "#.utf8))
        XCTAssertEqual(status, 400); XCTAssertEqual(errorBody(body)?["type"] as? String, "BadRequestError")
        (status, body) = try http("POST", "/v1/completions", body: Array(#"{"model": "x", "prompt": "a"}"#.utf8))
        XCTAssertEqual(status, 404); XCTAssertEqual(errorBody(body)?["param"] as? String, "model")
        (status, body) = try http("POST", "/v1/completions", body: Array(repeating: UInt8(ascii: " "), count: 5000))
        XCTAssertEqual(status, 413); XCTAssertEqual(errorBody(body)?["code"] as? Int, 413)
        (status, body) = try http("GET", "/v1/unknown")
        XCTAssertEqual(status, 404); XCTAssertNotNil(errorBody(body))
        (status, body) = try http("POST", "/v1/completions", body: Array(#"{"prompt": "a", "max_tokens": 2}"#.utf8))
        XCTAssertEqual(status, 200, body)
        XCTAssertEqual(((try JSONSerialization.jsonObject(with: Data(body.utf8)) as! [String: Any])["choices"] as! [[String: Any]])[0]["text"] as? String, "bc")
        (status, _) = try http("GET", "/health")
        XCTAssertEqual(status, 200)
    }

    func testAPIKey() throws {
        try startServer(apiKey: "k")
        XCTAssertEqual(try http("GET", "/v1/models").0, 401)
        XCTAssertEqual(try http("GET", "/v1/models", headers: ["Authorization": "Bearer nope"]).0, 401)
        XCTAssertEqual(try http("GET", "/v1/models", headers: ["Authorization": "Bearer k"]).0, 200)
        XCTAssertEqual(try http("GET", "/metrics").0, 200, "only /v1 routes need the key")
    }

    func testStreamingAndDisconnectAborts() throws {
        try startServer()
        let (status, body) = try http("POST", "/v1/completions", body: Array(#"{"prompt": "a", "max_tokens": 3, "stream": true}"#.utf8))
        XCTAssertEqual(status, 200)
        XCTAssertTrue(body.contains("data: [DONE]"), body)

        // A client that reads the first event and hangs up.
        let fd = try connect()
        let req = #"{"prompt": "a", "max_tokens": 50000, "stream": true}"#
        try send(fd, Array("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: \(req.utf8.count)\r\n\r\n\(req)".utf8))
        var buf = [UInt8](repeating: 0, count: 4096)
        var got = ""
        while !got.contains("data: ") {
            let n = read(fd, &buf, buf.count)
            XCTAssertGreaterThan(n, 0)
            if n <= 0 { break }
            got += String(decoding: buf[0..<n], as: UTF8.self)
        }
        XCTAssertEqual(backend.numRunning, 1)
        close(fd)
        let deadline = Date().addingTimeInterval(5)
        while backend.numRunning > 0 && Date() < deadline { usleep(5_000) }
        XCTAssertEqual(backend.numRunning, 0, "the disconnected client's request was aborted")
        XCTAssertEqual(backend.aborted.count, 1)
    }
}
