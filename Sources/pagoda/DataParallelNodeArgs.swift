import ArgumentParser
import Foundation
import PagodaServer

/// The multi-node data-parallel flags of `pagoda serve` (vLLM's names and meanings): which ranks run on this
/// node, whether it runs headless, and how long the head waits for the others. `--data-parallel-size`,
/// `-rank`, `-address` and `-rpc-port` are in `ServerArgs`.
struct DataParallelNodeArgs: ParsableArguments {
    @Option(
        name: .customLong("data-parallel-size-local"),
        help: "Data-parallel ranks (engine cores) on this node. Default: all of --data-parallel-size. 0 on the head: the API server only.")
    var dataParallelSizeLocal: Int?

    @Option(
        name: .customLong("data-parallel-start-rank"),
        help: "The first data-parallel rank of this node (with --headless, or above 0: hybrid load balancing). Default: 0.")
    var dataParallelStartRank: Int?

    @Flag(
        name: .customLong("headless"),
        help: "Run only this node's engine cores, which join the head at --data-parallel-address:--data-parallel-rpc-port; no API server.")
    var headless = false

    @Option(
        name: .customLong("data-parallel-engine-ready-timeout"),
        help:
            "Seconds to wait for the engine cores to start and every data-parallel rank to join (env: PAGODA_ENGINE_READY_TIMEOUT_S, then vLLM's VLLM_ENGINE_READY_TIMEOUT_S). Default: 600."
    )
    var engineReadyTimeout: Double?

    @Option(
        name: .customLong("data-parallel-heartbeat-timeout"),
        help:
            "Seconds of silence after which a connection between the head and a headless node's engine core counts as lost (heartbeats every fifth of it)."
    )
    var heartbeatTimeout: Double = 10

    @Option(
        name: .customLong("api-server-count"),
        help: "API-server processes sharing the port (SO_REUSEPORT); each sees every engine core of this server. None with --headless.")
    var apiServerCount: Int?

    @Option(
        name: .customLong("data-parallel-backend"),
        help:
            "mp (engine cores started by this server and by headless nodes) or ray (every rank's engine core placed on a running Ray cluster; see PAGODA_RAY_DP_PACK_STRATEGY)."
    )
    var dataParallelBackend: String = "mp"
}

/// The multi-node settings of one `serve`, validated together.
struct DataParallelNodeSettings {
    var deployment: DataParallelDeployment
    /// Seconds for engine cores to start and remote ranks to join.
    var readyTimeout: Double
    var heartbeatTimeout: Double

    static let defaultReadyTimeout = 600.0

    /// API-server processes this node runs (`--api-server-count`, default 1; 0 on a headless node).
    var apiServerCount: Int
    /// `--data-parallel-backend ray`: where and how Ray places the ranks (nil: `mp`).
    var ray: RayDataParallelPlan?

    init(
        server: ServerArgs, node: DataParallelNodeArgs, frontEnd: FrontEndArgs,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
        switch node.dataParallelBackend {
        case "mp": ray = nil
        case "ray": ray = try RayDataParallelPlan(server: server, node: node, frontEnd: frontEnd, environment: environment)
        default: throw ValidationError("invalid --data-parallel-backend \(node.dataParallelBackend): must be mp or ray")
        }
        do {
            // With Ray every rank is placed by Ray and joins this server over TCP, like a headless node's rank.
            deployment = try DataParallelDeployment(
                size: server.dataParallelSize, rank: server.dataParallelRank, sizeLocal: ray != nil ? 0 : node.dataParallelSizeLocal,
                startRank: node.dataParallelStartRank, headless: node.headless, address: server.dataParallelAddress,
                rpcPort: server.dataParallelRPCPort, apiServerCount: node.apiServerCount,
                hybridLB: frontEnd.hybridLB, externalLB: frontEnd.externalLB)
        } catch let e as DataParallelDeploymentError {
            throw ValidationError(e.message)
        }
        apiServerCount = node.apiServerCount ?? (node.headless ? 0 : 1)
        if apiServerCount > 1 && server.port == 0 {
            throw ValidationError(
                "--api-server-count \(apiServerCount) needs a fixed --port (port 0 would give each API server a different one)")
        }
        if let index = frontEnd.apiServerIndex, !(0..<max(apiServerCount, 1)).contains(index) {
            throw ValidationError("invalid --api-server-index \(index): must be in 0..<\(apiServerCount) (--api-server-count)")
        }
        let flag = node.engineReadyTimeout.map { String($0) }
        let text = EnvironmentSetting.value(
            flag: flag, flagName: "--data-parallel-engine-ready-timeout",
            variables: ["PAGODA_ENGINE_READY_TIMEOUT_S", "VLLM_ENGINE_READY_TIMEOUT_S"], in: environment)
        if let text {
            guard let v = Double(text.value.trimmingCharacters(in: .whitespaces)), v > 0, v.isFinite else {
                throw ValidationError("invalid \(text.source) \"\(text.value)\": must be a positive number of seconds")
            }
            readyTimeout = v
        } else {
            readyTimeout = Self.defaultReadyTimeout
        }
        guard node.heartbeatTimeout > 0, node.heartbeatTimeout.isFinite else {
            throw ValidationError(
                "invalid --data-parallel-heartbeat-timeout \(node.heartbeatTimeout): must be a positive number of seconds")
        }
        heartbeatTimeout = node.heartbeatTimeout
    }
}
