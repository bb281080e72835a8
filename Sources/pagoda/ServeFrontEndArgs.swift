import ArgumentParser
import Foundation
import PagodaEngine
import PagodaServer

/// `pagoda serve`'s data-parallel load-balancing mode flags (vLLM's names), and the hidden flags `serve` hands
/// its own API-server processes. `--api-server-count`, `--data-parallel-size-local` and `--data-parallel-start-rank`
/// are in `DataParallelNodeArgs`; all of them are checked together by `DataParallelDeployment`.
struct FrontEndArgs: ParsableArguments {
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

    @Option(name: .customLong("api-server-index"), help: .hidden)
    var apiServerIndex: Int?

    @Option(name: .customLong("engine-rpc-address"), help: .hidden)
    var engineRPCAddresses: [String] = []
}

extension DataParallelDeployment {
    /// One engine config per local rank: its global rank, and an even share of the CPUs when there are several.
    func engineConfigs(base: EngineConfig) -> [EngineConfig] {
        let ranks = Array(localRanks)
        return ranks.enumerated().map { i, r in
            var c = base
            c.parallel.dataParallelSize = size
            c.parallel.dataParallelRank = r
            if ranks.count > 1 { c.parallel.engineCPUs = WorkerCPUPlacement.engineShare(index: i, count: ranks.count) }
            return c
        }
    }

    /// How the start-up log describes this server.
    var summary: String {
        let ranks = localSize == 1 ? "rank \(startRank)" : "ranks \(startRank)..\(startRank + localSize - 1)"
        switch loadBalancing {
        case .internal:
            let joining =
                remoteRanks.isEmpty ? "" : "; ranks \(remoteRanks.map(String.init).joined(separator: ", ")) join from headless nodes"
            return
                "data parallel size \(size): \(localSize) local engine cores behind this server\(joining) (internal load balancing)"
        case .hybrid:
            return
                "data parallel \(ranks) of \(size) behind this server (hybrid load balancing: an outside balancer spreads over the nodes)"
        case .external: return "data parallel rank \(startRank) of \(size) (external load balancing: this server is one rank)"
        }
    }
}
