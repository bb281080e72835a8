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

    @Option(name: .customLong("data-parallel-start-rank"), help: "The first data-parallel rank of this node (with --headless). Default: 0.")
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
            "Seconds of silence after which a connection between the head and a headless node's engine core counts as lost (heartbeats every fifth of it). Default: 10."
    )
    var heartbeatTimeout: Double = 10

    /// Parsed only to reject the combinations vLLM rejects (`--headless` with API servers); more than one API
    /// server is not run by this build.
    @Option(name: .customLong("api-server-count"), help: "API server processes (vLLM); only 1 is supported, and none with --headless.")
    var apiServerCount: Int?
}

/// The multi-node settings of one `serve`, validated together.
struct DataParallelNodeSettings {
    var deployment: DataParallelDeployment
    /// Seconds for engine cores to start and remote ranks to join.
    var readyTimeout: Double
    var heartbeatTimeout: Double

    static let defaultReadyTimeout = 600.0

    init(server: ServerArgs, node: DataParallelNodeArgs, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        do {
            deployment = try DataParallelDeployment(
                size: server.dataParallelSize, rank: server.dataParallelRank, sizeLocal: node.dataParallelSizeLocal,
                startRank: node.dataParallelStartRank, headless: node.headless, address: server.dataParallelAddress,
                rpcPort: server.dataParallelRPCPort, apiServerCount: node.apiServerCount)
        } catch let e as DataParallelDeploymentError {
            throw ValidationError(e.message)
        }
        if let k = node.apiServerCount, k > 1 {
            throw ValidationError("--api-server-count \(k): more than one API server is not supported by this build")
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
