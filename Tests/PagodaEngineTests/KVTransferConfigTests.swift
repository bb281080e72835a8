import XCTest

@testable import PagodaEngine

/// `--kv-transfer-config` parsing: the fields, vLLM's connector names, and one-line errors naming the field.
final class KVTransferConfigTests: XCTestCase {
    private func error(_ json: String) -> String {
        do {
            _ = try KVTransferConfig.parse(json: json)
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    func testFieldsAndDefaults() throws {
        let c = try KVTransferConfig.parse(
            json: #"""
                {"kv_connector":"TCPConnector","kv_role":"kv_producer","kv_rank":0,"kv_parallel_size":2,"kv_ip":"127.0.0.1",
                 "kv_port":15000,"kv_buffer_size":5e9,"kv_connector_extra_config":{"transfer_timeout_s":7.5}}
                """#)
        XCTAssertEqual(c.connector, .tcp)
        XCTAssertEqual(c.role, .producer)
        XCTAssertEqual(c.rank, 0)
        XCTAssertEqual(c.parallelSize, 2)
        XCTAssertEqual(c.port, 15000)
        XCTAssertEqual(c.bufferSize, 5_000_000_000)
        XCTAssertEqual(c.transferTimeoutSeconds, 7.5)
        XCTAssertFalse(c.isAlias)
        let d = try KVTransferConfig.parse(json: #"{"kv_connector":"TCPConnector","kv_role":"kv_consumer"}"#)
        XCTAssertEqual(d.port, 14579)
        XCTAssertEqual(d.ip, "127.0.0.1")
        XCTAssertEqual(d.transferTimeoutSeconds, 30)
        XCTAssertTrue(d.sameHostCopy)
        let e = try KVTransferConfig.parse(
            json: #"{"kv_connector":"TCPConnector","kv_role":"kv_consumer","kv_connector_extra_config":{"same_host_copy":false}}"#)
        XCTAssertFalse(e.sameHostCopy)
        XCTAssertNil(d.connectionsPerRank, "the fetcher's default")
        let f = try KVTransferConfig.parse(
            json: #"{"kv_connector":"TCPConnector","kv_role":"kv_consumer","kv_connector_extra_config":{"connections_per_rank":4}}"#)
        XCTAssertEqual(f.connectionsPerRank, 4)
    }

    func testVLLMConnectorNamesAreAliasesOfTheTCPConnector() throws {
        for name in ["PyNcclConnector", "P2pNcclConnector", "NixlConnector"] {
            let c = try KVTransferConfig.parse(json: #"{"kv_connector":"\#(name)","kv_role":"kv_both"}"#)
            XCTAssertEqual(c.connector, .tcp, name)
            XCTAssertTrue(c.isAlias, name)
            XCTAssertEqual(c.connectorName, name)
        }
        let s = try KVTransferConfig.parse(
            json: #"""
                {"kv_connector":"SharedStorageConnector","kv_role":"kv_both","kv_connector_extra_config":{"shared_storage_path":"/tmp/x"}}
                """#)
        XCTAssertEqual(s.connector, .sharedStorage)
        XCTAssertEqual(s.sharedStoragePath, "/tmp/x")
    }

    func testBadValuesNameTheirField() {
        let cases: [(String, String)] = [
            ("{not json", "invalid --kv-transfer-config: JSON:"),
            (#"{"kv_role":"kv_producer"}"#, "kv_connector: missing"),
            (#"{"kv_connector":"FooConnector","kv_role":"kv_producer"}"#, "kv_connector: unknown connector 'FooConnector'"),
            (#"{"kv_connector":"TCPConnector"}"#, "kv_role: missing"),
            (#"{"kv_connector":"TCPConnector","kv_role":"producer"}"#, "kv_role: unknown role 'producer'"),
            (#"{"kv_connector":"TCPConnector","kv_role":"kv_both","kv_port":70000}"#, "kv_port: 70000 is not a TCP port"),
            (#"{"kv_connector":"TCPConnector","kv_role":"kv_both","kv_port":"80"}"#, "kv_port: must be a number"),
            (#"{"kv_connector":"TCPConnector","kv_role":"kv_both","kv_ip":"host.example"}"#, "kv_ip: 'host.example' is not an IPv4"),
            (#"{"kv_connector":"TCPConnector","kv_role":"kv_both","kv_rank":3,"kv_parallel_size":2}"#, "kv_rank: 3 is not below"),
            (#"{"kv_connector":"TCPConnector","kv_role":"kv_both","kv_parallel_size":2}"#, "kv_rank: missing"),
            (#"{"kv_connector":"TCPConnector","kv_role":"kv_both","kv_buffer_size":0}"#, "kv_buffer_size: must be a positive"),
            (#"{"kv_connector":"TCPConnector","kv_role":"kv_both","kv_bogus":1}"#, "kv_bogus: unknown field"),
            (
                #"{"kv_connector":"TCPConnector","kv_role":"kv_both","kv_connector_extra_config":{"transfer_timeout_s":-1}}"#,
                "kv_connector_extra_config.transfer_timeout_s: must be in"
            ),
            (
                #"{"kv_connector":"TCPConnector","kv_role":"kv_both","kv_connector_extra_config":{"nope":1}}"#,
                "kv_connector_extra_config.nope: unknown field"
            ),
            (#"{"kv_connector":"TCPConnector","kv_role":"kv_both","kv_connector_extra_config":5}"#, "kv_connector_extra_config: must be"),
            (
                #"{"kv_connector":"TCPConnector","kv_role":"kv_both","kv_connector_extra_config":{"connections_per_rank":0}}"#,
                "kv_connector_extra_config.connections_per_rank: must be a whole number in [1, 16], got 0"
            ),
            (
                #"{"kv_connector":"TCPConnector","kv_role":"kv_both","kv_connector_extra_config":{"connections_per_rank":2.5}}"#,
                "kv_connector_extra_config.connections_per_rank: must be a whole number"
            ),
            (
                #"{"kv_connector":"TCPConnector","kv_role":"kv_both","kv_connector_extra_config":{"same_host_copy":"no"}}"#,
                "kv_connector_extra_config.same_host_copy: must be true or false"
            ),
            (#"{"kv_connector":"SharedStorageConnector","kv_role":"kv_both"}"#, "kv_connector_extra_config.shared_storage_path: missing"),
        ]
        for (json, expected) in cases {
            let e = error(json)
            XCTAssertTrue(e.contains(expected), "\(json): got '\(e)', expected '\(expected)'")
            XCTAssertFalse(e.contains("\n"), json)
        }
    }

    func testPipelineParallelAndSharedStorageWithTensorParallelAreRefusedWithAClearError() throws {
        var config = EngineConfig(
            model: ModelLoadConfig(path: "m"),
            kvTransfer: KVTransferConfig(connector: .tcp, role: .producer))
        config.parallel.tensorParallelSize = 2
        XCTAssertNoThrow(try config.validate(), "the TCP connector runs with tensor parallelism")
        config.parallel.pipelineParallelSize = 2
        XCTAssertThrowsError(try config.validate()) { e in
            XCTAssertTrue("\(e)".contains("--kv-transfer-config"), "\(e)")
            XCTAssertTrue("\(e)".contains("--pipeline-parallel-size 1"), "\(e)")
        }
        config.parallel.pipelineParallelSize = 1
        config.kvTransfer = KVTransferConfig(connector: .sharedStorage, role: .both, sharedStoragePath: "/tmp/x")
        XCTAssertThrowsError(try config.validate()) { e in
            XCTAssertTrue("\(e)".contains("SharedStorageConnector runs with the in-process executor only"), "\(e)")
        }
    }
}
