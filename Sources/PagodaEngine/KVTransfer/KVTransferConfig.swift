import Foundation

/// `--kv-transfer-config`: which KV connector an engine runs and its role in a prefill/decode pair
/// (vLLM's `KVTransferConfig`). Parsed and validated once by the command line (`parse(json:)`).
public struct KVTransferConfig: Sendable, Codable, Equatable {
    /// The connectors Pagoda implements.
    public enum Connector: String, Sendable, Codable {
        /// Blocks move over TCP from the producer's KV server to the consumer (`TCPConnector`).
        case tcp = "TCPConnector"
        /// Blocks go to and come from files in a directory, keyed by block hash (`SharedStorageConnector`).
        case sharedStorage = "SharedStorageConnector"
    }
    /// vLLM's `kv_role`.
    public enum Role: String, Sendable, Codable {
        case producer = "kv_producer", consumer = "kv_consumer", both = "kv_both"
        public var isProducer: Bool { self != .consumer }
        public var isConsumer: Bool { self != .producer }
    }

    public var connector: Connector
    /// The name the user gave (`NixlConnector` etc. stay visible in logs).
    public var connectorName: String
    public var role: Role
    public var rank: Int?
    public var parallelSize: Int
    /// The address the producer's KV server listens on and announces in `remote_host`.
    public var ip: String
    /// The producer's KV server port (0: any free port, announced in `remote_port`).
    public var port: Int
    /// Most bytes of KV a producer holds for remote readers at once; beyond it blocks are freed at once
    /// and the decode side recomputes.
    public var bufferSize: Int
    /// How long a producer holds a finished request's blocks for its reader, and how long a consumer
    /// waits for a transfer, in seconds (`kv_connector_extra_config.transfer_timeout_s`).
    public var transferTimeoutSeconds: Double
    /// How long a consumer tries to reach a producer (`kv_connector_extra_config.connect_timeout_s`).
    public var connectTimeoutSeconds: Double
    /// The shared-storage connector's directory (`kv_connector_extra_config.shared_storage_path`).
    public var sharedStoragePath: String?
    /// Names this engine in `remote_engine_id` (`engine_id`; default: a random id at start).
    public var engineId: String?
    /// A consumer on the producer's host copies blocks out of the producer's memory instead of streaming
    /// them over TCP (`kv_connector_extra_config.same_host_copy`, default true; see `KVSameHostCopy`).
    public var sameHostCopy = true
    /// Connections a consumer opens to each producer rank per transfer, each reading a range of layers on
    /// its own thread (`kv_connector_extra_config.connections_per_rank`, 1-16; nil: two per transfer split
    /// over the producer ranks read, `KVBlockFetcher.defaultConnectionsPerRank`).
    public var connectionsPerRank: Int? = nil

    public init(
        connector: Connector, role: Role, connectorName: String? = nil, rank: Int? = nil, parallelSize: Int = 1,
        ip: String = "127.0.0.1", port: Int = 14579, bufferSize: Int = 1_000_000_000,
        transferTimeoutSeconds: Double = 30, connectTimeoutSeconds: Double = 5, sharedStoragePath: String? = nil,
        engineId: String? = nil
    ) {
        self.connector = connector; self.connectorName = connectorName ?? connector.rawValue; self.role = role
        self.rank = rank; self.parallelSize = parallelSize; self.ip = ip; self.port = port; self.bufferSize = bufferSize
        self.transferTimeoutSeconds = transferTimeoutSeconds; self.connectTimeoutSeconds = connectTimeoutSeconds
        self.sharedStoragePath = sharedStoragePath; self.engineId = engineId
    }

    /// vLLM connector names that Pagoda serves with its TCP connector.
    public static let tcpAliases: Set<String> = ["PyNcclConnector", "P2pNcclConnector", "NixlConnector", "PagodaTCPConnector"]

    /// True when the user named a vLLM connector that Pagoda replaces with its TCP connector.
    public var isAlias: Bool { connector == .tcp && connectorName != Connector.tcp.rawValue }
}

/// A bad `--kv-transfer-config`: names the field.
public struct KVTransferConfigError: Error, CustomStringConvertible, Equatable {
    public let field: String
    public let reason: String
    public var description: String { "invalid --kv-transfer-config: \(field): \(reason)" }
}

extension KVTransferConfig {
    private static let topLevelFields: Set<String> = [
        "kv_connector", "kv_role", "kv_rank", "kv_parallel_size", "kv_ip", "kv_port", "kv_buffer_size",
        "kv_connector_extra_config", "engine_id", "kv_buffer_device",
    ]
    private static let extraFields: Set<String> = [
        "transfer_timeout_s", "connect_timeout_s", "shared_storage_path",
        "kv_load_failure_policy", "same_host_copy", "connections_per_rank",
    ]

    /// Parses and validates the flag's JSON; the first problem is a one-line error naming its field.
    public static func parse(json text: String) throws -> KVTransferConfig {
        func fail(_ field: String, _ reason: String) -> KVTransferConfigError { KVTransferConfigError(field: field, reason: reason) }
        guard let data = text.data(using: .utf8), let any = try? JSONSerialization.jsonObject(with: data),
            let obj = any as? [String: Any]
        else { throw fail("JSON", "not a JSON object: \(text.prefix(80))") }
        for key in obj.keys.sorted() where !topLevelFields.contains(key) { throw fail(key, "unknown field") }

        // Types: decoded field by field, so that a wrong type names its field.
        let raw: RawFields
        do { raw = try JSONDecoder().decode(RawFields.self, from: data) } catch let DecodingError.typeMismatch(type, ctx) {
            throw fail(ctx.codingPath.map(\.stringValue).joined(separator: "."), "must be \(typeName(type))")
        } catch let DecodingError.dataCorrupted(ctx) {
            throw fail(ctx.codingPath.map(\.stringValue).joined(separator: "."), ctx.debugDescription)
        } catch {
            throw fail("JSON", "\(error)")
        }
        func string(_ o: [String: Any], _ key: String, _ path: String) throws -> String? {
            path.hasPrefix("kv_connector_extra_config.") ? raw.extra?.string(key) : raw.string(key)
        }
        func number(_ o: [String: Any], _ key: String, _ path: String) throws -> Double? {
            path.hasPrefix("kv_connector_extra_config.") ? raw.extra?.number(key) : raw.number(key)
        }
        func integer(_ o: [String: Any], _ key: String, _ path: String) throws -> Int? {
            guard let d = try number(o, key, path) else { return nil }
            guard d.rounded() == d, abs(d) < 1e15 else { throw fail(path, "must be an integer, got \(d)") }
            return Int(d)
        }

        guard let name = try string(obj, "kv_connector", "kv_connector") else { throw fail("kv_connector", "missing") }
        let connector: Connector
        if name == Connector.sharedStorage.rawValue {
            connector = .sharedStorage
        } else if name == Connector.tcp.rawValue || tcpAliases.contains(name) {
            connector = .tcp
        } else {
            throw fail(
                "kv_connector",
                "unknown connector '\(name)' (expected TCPConnector, SharedStorageConnector, "
                    + "or vLLM's PyNcclConnector, P2pNcclConnector, NixlConnector)")
        }
        guard let roleText = try string(obj, "kv_role", "kv_role") else { throw fail("kv_role", "missing") }
        guard let role = Role(rawValue: roleText) else {
            throw fail("kv_role", "unknown role '\(roleText)' (expected kv_producer, kv_consumer or kv_both)")
        }
        var c = KVTransferConfig(connector: connector, role: role, connectorName: name)
        if let p = try integer(obj, "kv_parallel_size", "kv_parallel_size") {
            guard p >= 1 else { throw fail("kv_parallel_size", "must be at least 1, got \(p)") }
            c.parallelSize = p
        }
        if let r = try integer(obj, "kv_rank", "kv_rank") {
            guard r >= 0 else { throw fail("kv_rank", "must be at least 0, got \(r)") }
            guard r < max(c.parallelSize, 2) else {
                throw fail("kv_rank", "\(r) is not below kv_parallel_size \(c.parallelSize)")
            }
            c.rank = r
        }
        if let ip = try string(obj, "kv_ip", "kv_ip") {
            var a = in_addr()
            guard ip == "localhost" || inet_pton(AF_INET, ip, &a) == 1 else {
                throw fail("kv_ip", "'\(ip)' is not an IPv4 address")
            }
            c.ip = ip == "localhost" ? "127.0.0.1" : ip
        }
        if let port = try integer(obj, "kv_port", "kv_port") {
            guard (0...65535).contains(port) else { throw fail("kv_port", "\(port) is not a TCP port (0-65535)") }
            c.port = port
        }
        if let b = try number(obj, "kv_buffer_size", "kv_buffer_size") {
            guard b >= 1, b < 1e18 else { throw fail("kv_buffer_size", "must be a positive number of bytes, got \(b)") }
            c.bufferSize = Int(b)
        }
        if let id = try string(obj, "engine_id", "engine_id") {
            guard !id.isEmpty else { throw fail("engine_id", "must not be empty") }
            c.engineId = id
        }
        if let device = try string(obj, "kv_buffer_device", "kv_buffer_device"), device != "cpu" {
            throw fail("kv_buffer_device", "'\(device)': Pagoda keeps KV in CPU memory (expected cpu)")
        }
        if let extraAny = obj["kv_connector_extra_config"], !(extraAny is NSNull) {
            let extra = extraAny as? [String: Any] ?? [:]
            for key in extra.keys.sorted() where !extraFields.contains(key) {
                throw fail("kv_connector_extra_config.\(key)", "unknown field")
            }
            if let t = try number(extra, "transfer_timeout_s", "kv_connector_extra_config.transfer_timeout_s") {
                guard t > 0, t <= 86400 else {
                    throw fail("kv_connector_extra_config.transfer_timeout_s", "must be in (0, 86400] seconds, got \(t)")
                }
                c.transferTimeoutSeconds = t
            }
            if let t = try number(extra, "connect_timeout_s", "kv_connector_extra_config.connect_timeout_s") {
                guard t > 0, t <= 3600 else {
                    throw fail("kv_connector_extra_config.connect_timeout_s", "must be in (0, 3600] seconds, got \(t)")
                }
                c.connectTimeoutSeconds = t
            }
            if let p = try string(extra, "shared_storage_path", "kv_connector_extra_config.shared_storage_path") {
                guard !p.isEmpty else { throw fail("kv_connector_extra_config.shared_storage_path", "must not be empty") }
                c.sharedStoragePath = p
            }
            if let b = raw.extra?.same_host_copy { c.sameHostCopy = b }
            if let n = try number(extra, "connections_per_rank", "kv_connector_extra_config.connections_per_rank") {
                guard n >= 1, n <= 16, n == n.rounded() else {
                    let shown = abs(n) < 1e15 && n == n.rounded() ? String(Int(n)) : "\(n)"
                    throw fail("kv_connector_extra_config.connections_per_rank", "must be a whole number in [1, 16], got \(shown)")
                }
                c.connectionsPerRank = Int(n)
            }
            if let policy = try string(extra, "kv_load_failure_policy", "kv_connector_extra_config.kv_load_failure_policy"),
                policy != "recompute"
            {
                throw fail(
                    "kv_connector_extra_config.kv_load_failure_policy",
                    "'\(policy)' is not supported (Pagoda always recomputes a prefill whose KV did not arrive: recompute)")
            }
        }
        if connector == .sharedStorage && c.sharedStoragePath == nil {
            throw fail("kv_connector_extra_config.shared_storage_path", "missing (SharedStorageConnector needs a directory)")
        }
        if connector == .tcp && c.parallelSize > 1 && c.rank == nil {
            throw fail("kv_rank", "missing (kv_parallel_size is \(c.parallelSize))")
        }
        return c
    }
}

/// The flag's fields with their JSON types (strings, numbers), decoded before the values are checked.
private struct RawFields: Decodable {
    struct Extra: Decodable {
        var transfer_timeout_s: Double?
        var connect_timeout_s: Double?
        var shared_storage_path: String?
        var kv_load_failure_policy: String?
        var same_host_copy: Bool?
        var connections_per_rank: Double?
        func string(_ key: String) -> String? {
            key == "shared_storage_path" ? shared_storage_path : key == "kv_load_failure_policy" ? kv_load_failure_policy : nil
        }
        func number(_ key: String) -> Double? {
            switch key {
            case "transfer_timeout_s": return transfer_timeout_s
            case "connect_timeout_s": return connect_timeout_s
            case "connections_per_rank": return connections_per_rank
            default: return nil
            }
        }
    }
    var kv_connector: String?
    var kv_role: String?
    var kv_rank: Double?
    var kv_parallel_size: Double?
    var kv_ip: String?
    var kv_port: Double?
    var kv_buffer_size: Double?
    var engine_id: String?
    var kv_buffer_device: String?
    var extra: Extra?
    enum CodingKeys: String, CodingKey {
        case kv_connector, kv_role, kv_rank, kv_parallel_size, kv_ip, kv_port, kv_buffer_size, engine_id, kv_buffer_device
        case extra = "kv_connector_extra_config"
    }
    func string(_ key: String) -> String? {
        switch key {
        case "kv_connector": return kv_connector
        case "kv_role": return kv_role
        case "kv_ip": return kv_ip
        case "engine_id": return engine_id
        case "kv_buffer_device": return kv_buffer_device
        default: return nil
        }
    }
    func number(_ key: String) -> Double? {
        switch key {
        case "kv_rank": return kv_rank
        case "kv_parallel_size": return kv_parallel_size
        case "kv_port": return kv_port
        case "kv_buffer_size": return kv_buffer_size
        default: return nil
        }
    }
}

private func typeName(_ type: Any.Type) -> String {
    if type == String.self { return "a string" }
    if type == Double.self { return "a number" }
    if type == Bool.self { return "true or false" }
    return "an object"
}
