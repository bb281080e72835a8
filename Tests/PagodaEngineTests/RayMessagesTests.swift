import Foundation
import XCTest

@testable import PagodaEngine

/// The typed protocol between `RaySession` and `python/pagoda_ray.py`: requests as the helper reads them,
/// events as it writes them, and bad lines as errors naming them.
final class RayMessagesTests: XCTestCase {
    private func object(_ r: RayRequest) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: try r.encoded()) as? [String: Any])
    }

    func testPlaceCarriesWhatTheHelperPlansWith() throws {
        let o = try object(
            .place(
                job: "serve1", ranks: 2, firstRank: 0, localRanks: 1, bundlesPerRank: 2, bundle: ["pagoda_dev": 1],
                strategy: .fill, timeoutSeconds: 5))
        XCTAssertEqual(o["op"] as? String, "place")
        XCTAssertEqual(o["ranks"] as? Int, 2)
        XCTAssertEqual(o["local_ranks"] as? Int, 1)
        XCTAssertEqual(o["bundles_per_rank"] as? Int, 2)
        XCTAssertEqual(o["bundle"] as? [String: Double], ["pagoda_dev": 1])
        XCTAssertEqual(o["strategy"] as? String, "fill")
        XCTAssertEqual(o["timeout_s"] as? Double, 5)
        let noLocal = try object(
            .place(
                job: "j", ranks: 1, firstRank: 3, localRanks: nil, bundlesPerRank: 1, bundle: ["CPU": 1], strategy: .span, timeoutSeconds: 1
            ))
        XCTAssertNil(noLocal["local_ranks"])
        XCTAssertEqual(noLocal["first_rank"] as? Int, 3)
    }

    func testStartAndShutdown() throws {
        let o = try object(.start(job: "j", rank: 1, argv: ["pagoda", "engine-core", "--remote"]))
        XCTAssertEqual(o["op"] as? String, "start")
        XCTAssertEqual(o["argv"] as? [String], ["pagoda", "engine-core", "--remote"])
        XCTAssertNil(o["env"], "no environment: the key is left out")
        let withSecret = try object(.start(job: "j", rank: 0, argv: ["pagoda"], environment: ["PAGODA_INTERNAL_SECRET": "s"]))
        XCTAssertEqual(withSecret["env"] as? [String: String], ["PAGODA_INTERNAL_SECRET": "s"])
        XCTAssertEqual(withSecret["argv"] as? [String], ["pagoda"], "the secret travels in the environment, never in argv")
        XCTAssertEqual(try object(.shutdown)["op"] as? String, "shutdown")
        XCTAssertFalse(try RayRequest.shutdown.encoded().contains(0x0A), "one request is one line")
    }

    func testEventsParse() throws {
        func event(_ s: String) throws -> RayEvent { try RayEvent(line: Data(s.utf8)) }
        XCTAssertEqual(
            try event(#"{"event": "connected", "version": 1, "head_ip": "10.0.0.1", "nodes": [{"node_id": "a", "ip": "10.0.0.1"}]}"#),
            .connected(version: 1, headIP: "10.0.0.1", nodes: [RayNode(nodeID: "a", ip: "10.0.0.1")]))
        XCTAssertEqual(
            try event(#"{"event": "placed", "ranks": [{"rank": 1, "placement_group": "pagoda-j-dp1", "node_ips": ["10.0.0.2"]}]}"#),
            .placed([RayPlacedRank(rank: 1, placementGroup: "pagoda-j-dp1", nodeIPs: ["10.0.0.2"])]))
        XCTAssertEqual(
            try event(#"{"event": "started", "rank": 0, "pid": 42, "node_ip": "10.0.0.1"}"#), .started(rank: 0, pid: 42, nodeIP: "10.0.0.1")
        )
        XCTAssertEqual(
            try event(#"{"event": "exited", "rank": 1, "reason": "its Ray actor died"}"#), .exited(rank: 1, reason: "its Ray actor died"))
        XCTAssertEqual(try event(#"{"event": "error", "message": "no room"}"#), .error("no room"))
        XCTAssertEqual(try event(#"{"event": "stopped", "actors": 2, "placement_groups": 2}"#), .stopped(actors: 2, placementGroups: 2))
    }

    func testBadLinesAreErrorsNamingThem() {
        XCTAssertThrowsError(try RayEvent(line: Data("2026-12-03 INFO worker.py -- hello".utf8))) { e in
            XCTAssertTrue("\(e)".contains("unreadable message from the helper: 2026-12-03 INFO"), "\(e)")
        }
        XCTAssertThrowsError(try RayEvent(line: Data(#"{"event": "exited", "rank": 1}"#.utf8))) { e in
            XCTAssertTrue("\(e)".contains("'exited' without 'reason'"), "\(e)")
        }
        XCTAssertThrowsError(try RayEvent(line: Data(#"{"event": "teleported"}"#.utf8))) { e in
            XCTAssertTrue("\(e)".contains("unknown helper event 'teleported'"), "\(e)")
        }
    }

    func testParallelConfigWithRaySettingsRoundTrips() throws {
        // The engine config crosses to engine cores and workers as JSON: the backend and the Ray settings survive it.
        var p = ParallelConfig(tensorParallelSize: 2, distributedExecutorBackend: .ray)
        XCTAssertEqual(p.executorBackend, .ray)
        let data = try JSONEncoder().encode(p)
        XCTAssertEqual(try JSONDecoder().decode(ParallelConfig.self, from: data), p)
        p.ray = RaySettings(helperScript: "/x/pagoda_ray.py", bundle: ["pagoda_dev": 1])
        XCTAssertEqual(try JSONDecoder().decode(ParallelConfig.self, from: try JSONEncoder().encode(p)).ray?.bundle, ["pagoda_dev": 1])
        XCTAssertEqual(
            try p.ray!.helperCommand(["exec", "--bundle", "{rank}"]), ["python3", "-u", "/x/pagoda_ray.py", "exec", "--bundle", "{rank}"])
    }
}
