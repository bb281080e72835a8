import ArgumentParser
import Foundation
import Logging
import PagodaDistributed
import PagodaEngine
import PagodaServer

/// Where the engines of a data-parallel deployment under `--enable-expert-parallel` meet: the expert-parallel
/// group (all DP × TP workers) and the engine cores' wave-check group.
///
/// - Every rank on this host: a shared-memory group (`shm:/pagoda-ep-…`), or with `--distributed-transport tcp`
///   a TCP group on free loopback ports.
/// - Ranks on several nodes (a head with ranks joining from `--headless` nodes, and those nodes): TCP groups at
///   the head's `--data-parallel-address`, on the two ports after `--data-parallel-rpc-port` (expert-parallel
///   group on +1, wave check on +2). Rank 0 (on the head) listens there and every other rank connects, proving
///   the deployment secret, so head and headless nodes derive the same addresses from the flags they share.
enum ExpertParallelDeployment {
    /// Sets `config.parallel`'s group addresses (nothing unless the ranks step in lock-step), or throws a
    /// one-line error for a layout expert parallelism does not run in.
    static func assignGroups(
        _ config: inout EngineConfig, deployment: DataParallelDeployment, settings: DataParallelNodeSettings, logger: Logger
    ) throws {
        guard config.parallel.dataParallelLockStep else { return }
        let dpSize = deployment.size
        let spansNodes = deployment.headless || !deployment.remoteRanks.isEmpty
        guard deployment.loadBalancing == .internal, settings.apiServerCount == 1 || deployment.headless, settings.ray == nil else {
            throw ValidationError(
                "--enable-expert-parallel with --data-parallel-size \(dpSize) runs behind one API server (internal load balancing, local ranks or --headless nodes, --api-server-count 1, no Ray data-parallel backend)"
            )
        }
        if spansNodes {
            // Rank 0 listens at the head's address, so the head runs it.
            let headRunsRankZero = deployment.headless ? deployment.startRank > 0 : deployment.localSize > 0
            guard headRunsRankZero else {
                throw ValidationError(
                    "--enable-expert-parallel across nodes needs data-parallel rank 0 on the head (--data-parallel-size-local at least 1 there, --data-parallel-start-rank above 0 on --headless nodes): rank 0 listens for the expert-parallel group at --data-parallel-address"
                )
            }
            guard deployment.rpcPort + 2 <= 65535 else {
                throw ValidationError(
                    "invalid --data-parallel-rpc-port \(deployment.rpcPort): expert parallelism across nodes also listens on the two ports after it"
                )
            }
            config.parallel.expertParallelGroupAddress = "tcp:\(deployment.address):\(deployment.rpcPort + 1)"
            config.parallel.dataParallelControlAddress = "tcp:\(deployment.address):\(deployment.rpcPort + 2)"
        } else if config.parallel.effectiveTransport == .tcp {
            // --distributed-transport tcp: the groups meet over loopback TCP (rank 0 listens on a free port).
            func freePort() throws -> Int {
                let l = try TCPCommunicator.makeListener(host: "127.0.0.1")
                close(l.fd)
                return l.port
            }
            config.parallel.expertParallelGroupAddress = "tcp:127.0.0.1:\(try freePort())"
            config.parallel.dataParallelControlAddress = "tcp:127.0.0.1:\(try freePort())"
        } else {
            let tag = "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            config.parallel.expertParallelGroupAddress = "shm:/pagoda-ep-\(tag)"
            config.parallel.dataParallelControlAddress = "shm:/pagoda-dpc-\(tag)"
        }
        let across =
            spansNodes ? " across nodes (TCP groups at \(deployment.address):\(deployment.rpcPort + 1) and :\(deployment.rpcPort + 2))" : ""
        logger.info(
            "expert parallelism over \(dpSize) data-parallel ranks × \(config.parallel.tensorParallelSize) tensor ranks\(across); the ranks step in waves"
        )
    }
}
