import Foundation

/// What Pagoda asks the Ray helper (`pagoda_ray.py session`), one JSON object per line on its stdin.
public enum RayRequest: Equatable, Sendable {
    /// Reserve one placement group per rank `firstRank ..< firstRank + ranks`, each of `bundlesPerRank`
    /// bundles of `bundle`, laid out by `strategy` (`localRanks`: ranks on the head node for `strict`).
    case place(
        job: String, ranks: Int, firstRank: Int, localRanks: Int?, bundlesPerRank: Int, bundle: [String: Double],
        strategy: RayPackStrategy, timeoutSeconds: Double)
    /// Start `argv` in an actor in bundle 0 of `rank`'s placement group, with `environment` added to the
    /// actor's (how a child gets the deployment's secret: not in argv, which `ps` shows).
    case start(job: String, rank: Int, argv: [String], environment: [String: String] = [:])
    /// Stop every actor and remove every placement group of this session; the helper then exits.
    case shutdown

    /// The request as the line the helper reads (without the newline).
    public func encoded() throws -> Data {
        var o: [String: Any]
        switch self {
        case .place(let job, let ranks, let firstRank, let localRanks, let perRank, let bundle, let strategy, let timeout):
            o = [
                "op": "place", "job": job, "ranks": ranks, "first_rank": firstRank, "bundles_per_rank": perRank, "bundle": bundle,
                "strategy": strategy.rawValue, "timeout_s": timeout,
            ]
            if let localRanks { o["local_ranks"] = localRanks }
        case .start(let job, let rank, let argv, let environment):
            o = ["op": "start", "job": job, "rank": rank, "argv": argv]
            if !environment.isEmpty { o["env"] = environment }
        case .shutdown:
            o = ["op": "shutdown"]
        }
        return try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])
    }
}

/// Where the helper placed one rank: its placement group and the node of each bundle.
public struct RayPlacedRank: Codable, Equatable, Sendable {
    public var rank: Int
    public var placementGroup: String
    public var nodeIPs: [String]
    enum CodingKeys: String, CodingKey { case rank, placementGroup = "placement_group", nodeIPs = "node_ips" }
}

/// A node of the cluster as the helper saw it when it connected.
public struct RayNode: Codable, Equatable, Sendable {
    public var nodeID: String
    public var ip: String
    enum CodingKeys: String, CodingKey { case nodeID = "node_id", ip }
}

/// What the helper tells Pagoda, one JSON object per line on its stdout.
public enum RayEvent: Equatable, Sendable {
    /// Connected to the cluster; `headIP` is the node the helper (and this server) runs on.
    case connected(version: Int, headIP: String, nodes: [RayNode])
    case placed([RayPlacedRank])
    case started(rank: Int, pid: Int, nodeIP: String)
    /// The process of `rank` ended, or its actor (or node) died; Ray restarts nothing.
    case exited(rank: Int, reason: String)
    /// The last request failed (the message names what is missing for a placement).
    case error(String)
    /// Shutdown done: so many actors stopped and placement groups removed.
    case stopped(actors: Int, placementGroups: Int)

    private struct Wire: Decodable {
        var event: String
        var version: Int?
        var head_ip: String?
        var nodes: [RayNode]?
        var ranks: [RayPlacedRank]?
        var rank: Int?
        var pid: Int?
        var node_ip: String?
        var reason: String?
        var message: String?
        var actors: Int?
        var placement_groups: Int?
    }

    /// Parses one line of the helper's output; a line that is not a known event is an error naming it.
    public init(line: Data) throws {
        let w: Wire
        do { w = try JSONDecoder().decode(Wire.self, from: line) } catch {
            throw RayError.helper("unreadable message from the helper: \(String(decoding: line.prefix(200), as: UTF8.self))")
        }
        func need<T>(_ v: T?, _ field: String) throws -> T {
            guard let v else { throw RayError.helper("helper event '\(w.event)' without '\(field)'") }
            return v
        }
        switch w.event {
        case "connected":
            self = .connected(version: try need(w.version, "version"), headIP: try need(w.head_ip, "head_ip"), nodes: w.nodes ?? [])
        case "placed": self = .placed(try need(w.ranks, "ranks"))
        case "started": self = .started(rank: try need(w.rank, "rank"), pid: try need(w.pid, "pid"), nodeIP: try need(w.node_ip, "node_ip"))
        case "exited": self = .exited(rank: try need(w.rank, "rank"), reason: try need(w.reason, "reason"))
        case "error": self = .error(try need(w.message, "message"))
        case "stopped": self = .stopped(actors: w.actors ?? 0, placementGroups: w.placement_groups ?? 0)
        default: throw RayError.helper("unknown helper event '\(w.event)'")
        }
    }
}
