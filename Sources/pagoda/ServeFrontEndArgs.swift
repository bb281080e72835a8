import ArgumentParser
import Foundation
import PagodaEngine
import PagodaServer

/// `pagoda serve`'s front-end scale-out and data-parallel load-balancing flags (vLLM's names and rules),
/// and the hidden flags `serve` hands its own API-server processes.
struct FrontEndArgs: ParsableArguments {
    @Option(
        name: .customLong("api-server-count"),
        help: "API-server processes sharing the port (SO_REUSEPORT); each sees every engine core of this server.")
    var apiServerCount: Int = 1

    @Flag(
        name: .customLong("data-parallel-hybrid-lb"),
        help:
            "Hybrid load balancing: this server balances only its local ranks (--data-parallel-start-rank .. + --data-parallel-size-local); an outside balancer spreads over the servers."
    )
    var hybridLB = false

    @Flag(
        name: .customLong("data-parallel-external-lb"),
        help:
            "External load balancing: this server is one rank (--data-parallel-rank) with its own port; an outside balancer spreads over the ranks."
    )
    var externalLB = false

    @Option(name: .customLong("data-parallel-size-local"), help: "Data-parallel ranks (engine cores) run on this node.")
    var dataParallelSizeLocal: Int?

    @Option(
        name: .customLong("data-parallel-start-rank"),
        help: "Global rank of this node's first data-parallel rank (implies --data-parallel-hybrid-lb).")
    var dataParallelStartRank: Int?

    @Option(name: .customLong("api-server-index"), help: .hidden)
    var apiServerIndex: Int?

    @Option(name: .customLong("engine-rpc-address"), help: .hidden)
    var engineRPCAddresses: [String] = []

    /// The checks vLLM makes (`vllm serve`'s mode detection and `EngineArgs.create_engine_config`), as one-line errors.
    func validate(with server: ServerArgs) throws {
        guard apiServerCount >= 1 else { throw ValidationError("invalid --api-server-count \(apiServerCount): must be at least 1") }
        if apiServerCount > 1 && server.port == 0 {
            throw ValidationError("--api-server-count \(apiServerCount) needs a fixed --port (port 0 would give each API server a different one)")
        }
        _ = try layout(server: server, warn: { _ in })
        if let apiServerIndex {
            guard (0..<apiServerCount).contains(apiServerIndex) else {
                throw ValidationError("invalid --api-server-index \(apiServerIndex): must be in 0..<\(apiServerCount) (--api-server-count)")
            }
        }
    }

    /// Which ranks this server runs and how requests reach them; `warn` gets vLLM's automatic mode switches.
    func layout(server: ServerArgs, warn: (String) -> Void) throws -> DataParallelLayout {
        let size = server.dataParallelSize
        let external = externalLB || server.dataParallelRank != nil
        var hybrid = hybridLB || dataParallelStartRank != nil
        if external && hybrid {
            throw ValidationError(
                "cannot use more than one data-parallel load balancing mode: --data-parallel-external-lb (or --data-parallel-rank) and --data-parallel-hybrid-lb (or --data-parallel-start-rank)"
            )
        }
        if let local = dataParallelSizeLocal {
            guard local >= 1 else {
                throw ValidationError(
                    "invalid --data-parallel-size-local \(local): must be at least 1 (engine-less head nodes need --headless engine nodes)")
            }
            guard local <= size else {
                throw ValidationError("invalid --data-parallel-size-local \(local): above --data-parallel-size \(size)")
            }
        }
        if let start = dataParallelStartRank {
            guard (0..<size).contains(start) else {
                throw ValidationError("invalid --data-parallel-start-rank \(start): must be in 0..<\(size) (--data-parallel-size)")
            }
        }
        if external {
            guard let rank = server.dataParallelRank else {
                throw ValidationError("--data-parallel-external-lb needs --data-parallel-rank (this server's rank)")
            }
            guard dataParallelSizeLocal == nil || dataParallelSizeLocal == 1 else {
                throw ValidationError(
                    "--data-parallel-size-local must be 1 or unset with --data-parallel-rank (external load balancing runs one rank per server)"
                )
            }
            return DataParallelLayout(mode: .external, size: size, localRanks: [rank])
        }
        guard let local = dataParallelSizeLocal else {
            if hybrid { throw ValidationError("--data-parallel-hybrid-lb needs --data-parallel-size-local (the ranks this node runs)") }
            return DataParallelLayout(mode: .internal, size: size, localRanks: Array(0..<size))
        }
        let start = dataParallelStartRank ?? 0
        guard start + local <= size else {
            throw ValidationError(
                "--data-parallel-start-rank \(start) + --data-parallel-size-local \(local) exceeds --data-parallel-size \(size)")
        }
        if hybrid && local == 1 {
            warn("--data-parallel-hybrid-lb with one local rank is external load balancing: serving rank \(start) alone")
            return DataParallelLayout(mode: .external, size: size, localRanks: [start])
        }
        if local == size { hybrid = false }
        guard hybrid || local == size else {
            throw ValidationError(
                "--data-parallel-size-local \(local) below --data-parallel-size \(size) needs --data-parallel-hybrid-lb (or engine nodes started with --headless)"
            )
        }
        return DataParallelLayout(mode: hybrid ? .hybrid : .internal, size: size, localRanks: Array(start..<(start + local)))
    }
}

/// The data-parallel ranks one `pagoda serve` runs and how requests reach them (vLLM's load-balancing modes).
struct DataParallelLayout {
    /// internal: all ranks behind this server; hybrid: this node's ranks behind this server, an outside
    /// balancer over the nodes; external: one rank per server, an outside balancer over the ranks.
    enum Mode: String { case `internal`, hybrid, external }
    let mode: Mode
    /// `--data-parallel-size`: ranks in the whole deployment.
    let size: Int
    /// The global ranks whose engine cores this server runs, in order.
    let localRanks: [Int]

    /// One engine config per local rank: its global rank, and an even share of the CPUs when there are several.
    func engineConfigs(base: EngineConfig) -> [EngineConfig] {
        localRanks.enumerated().map { i, r in
            var c = base
            c.parallel.dataParallelSize = size
            c.parallel.dataParallelRank = r
            if localRanks.count > 1 { c.parallel.engineCPUs = WorkerCPUPlacement.engineShare(index: i, count: localRanks.count) }
            return c
        }
    }

    /// How the start-up log describes this server.
    var summary: String {
        let ranks = localRanks.count == 1 ? "rank \(localRanks[0])" : "ranks \(localRanks[0])..\(localRanks.last!)"
        switch mode {
        case .internal: return "data parallel size \(size): \(size) engine cores behind this server (internal load balancing)"
        case .hybrid:
            return
                "data parallel \(ranks) of \(size) behind this server (hybrid load balancing: an outside balancer spreads over the nodes)"
        case .external: return "data parallel rank \(localRanks[0]) of \(size) (external load balancing: this server is one rank)"
        }
    }
}
