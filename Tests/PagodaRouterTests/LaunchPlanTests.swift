import XCTest
@testable import PagodaRouter

final class LaunchPlanTests: XCTestCase {
    func testRanksPortsAndArguments() throws {
        var plan = LaunchPlan(model: "models/m", dpSize: 4)
        plan.dpSizeLocal = 2
        plan.dpRankStart = 2
        plan.tpSize = 2
        plan.startPort = 9100
        plan.host = "127.0.0.1"
        plan.extraServeArguments = ["--max-model-len", "512"]
        try plan.validate()
        XCTAssertEqual(plan.ranks.map(\.rank), [2, 3])
        XCTAssertEqual(plan.ranks.map(\.port), [9100, 9101])
        XCTAssertEqual(plan.ranks[1].arguments, [
            "models/m", "--host", "127.0.0.1", "--port", "9101", "--data-parallel-size", "4",
            "--data-parallel-rank", "3", "--tensor-parallel-size", "2", "--max-model-len", "512",
        ])
        XCTAssertEqual(plan.proxyCommand(), "pagoda proxy --host 0.0.0.0 --port 8000 --dp-hosts 127.0.0.1 127.0.0.1 --dp-ports 9100 9101")
    }

    func testDefaultsAndAddress() throws {
        var plan = LaunchPlan(model: nil, dpSize: 2)
        plan.dpAddress = "10.0.0.5"
        plan.dpRPCPort = 13345
        try plan.validate()
        XCTAssertEqual(plan.ranks.map(\.port), [9000, 9001])
        XCTAssertTrue(plan.ranks[0].arguments.starts(with: ["--host", "0.0.0.0"]))
        XCTAssertTrue(plan.ranks[0].arguments.contains("--data-parallel-rpc-port"))
        XCTAssertFalse(plan.ranks[0].arguments.contains("--tensor-parallel-size"))
        XCTAssertTrue(plan.proxyCommand().contains("--dp-hosts 10.0.0.5 10.0.0.5"))
    }

    func testBadValuesNameTheFlag() {
        func flag(_ change: (inout LaunchPlan) -> Void) -> String? {
            var plan = LaunchPlan(model: nil, dpSize: 2)
            change(&plan)
            do { try plan.validate(); return nil } catch let RouterConfigError.invalidValue(flag, _, _) { return flag } catch {
                return "?"
            }
        }
        XCTAssertNil(flag { _ in })
        XCTAssertEqual(flag { $0.dpSize = 0 }, "--dp-size")
        XCTAssertEqual(flag { $0.dpRankStart = 2 }, "--dp-rank-start")
        XCTAssertEqual(flag { $0.dpSizeLocal = 3 }, "--dp-size-local")
        XCTAssertEqual(flag { $0.startPort = 65535 }, "--start-port")
        XCTAssertEqual(flag { $0.tpSize = 0 }, "--tp-size")
        XCTAssertEqual(flag { $0.extraServeArguments = ["--port", "1"] }, "--port")
    }

    func testPortProbeSeesATakenPort() throws {
        // Listen on an ephemeral port, then ask the probe about it.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        XCTAssertEqual(bound, 0)
        XCTAssertEqual(listen(fd, 1), 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let port = Int(UInt16(bigEndian: address.sin_port))
        XCTAssertNotNil(PortProbe.bindError(host: "127.0.0.1", port: port))
        close(fd)
        XCTAssertNil(PortProbe.bindError(host: "127.0.0.1", port: port))
    }
}

#if canImport(Glibc)
import Glibc
#endif

final class LinePrefixerTests: XCTestCase {
    func testLinesArePrefixedOnlyWhenComplete() {
        var prefixer = LinePrefixer(prefix: "[rank 1] ")
        XCTAssertEqual(String(decoding: prefixer.feed(Array("hel".utf8)), as: UTF8.self), "")
        XCTAssertEqual(String(decoding: prefixer.feed(Array("lo\nwor".utf8)), as: UTF8.self), "[rank 1] hello\n")
        XCTAssertEqual(String(decoding: prefixer.feed(Array("ld\n\nx".utf8)), as: UTF8.self), "[rank 1] world\n[rank 1] \n")
        XCTAssertEqual(String(decoding: prefixer.finish(), as: UTF8.self), "[rank 1] x\n")
        XCTAssertEqual(prefixer.finish(), [])
    }
}
