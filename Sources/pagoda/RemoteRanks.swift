import Foundation
import Logging
import PagodaEngine
import PagodaServer

/// The head node's side of a multi-node deployment: the `RemoteRankAcceptor` for the ranks of headless nodes,
/// what the head logs when one is lost, how a returning one rejoins, and their shutdown with the server.
final class RemoteRanks: @unchecked Sendable {
    let acceptor: RemoteRankAcceptor
    let ranks: [Int]
    let origin: Origin
    private let logger: Logger

    /// Who starts the remote ranks: headless nodes (started again by hand, their ranks rejoin) or Ray
    /// (`--data-parallel-backend ray`, which restarts nothing).
    enum Origin { case headlessNode, ray }

    private init(acceptor: RemoteRankAcceptor, ranks: [Int], origin: Origin, logger: Logger) {
        self.acceptor = acceptor; self.ranks = ranks; self.origin = origin; self.logger = logger
    }

    /// Listens at `--data-parallel-address:--data-parallel-rpc-port` when some ranks are remote (nil otherwise).
    static func listen(
        deployment: DataParallelDeployment, config: EngineConfig, modelPath: String, liveness: EngineRPCLiveness,
        origin: Origin = .headlessNode, logger: Logger
    ) throws -> RemoteRanks? {
        let ranks = deployment.remoteRanks
        guard !ranks.isEmpty else { return nil }
        let identity: String
        do { identity = try ModelFingerprint.of(path: modelPath) } catch { throw ServeStartupError("\(error)") }
        let admission = RankAdmission(
            size: deployment.size, localRanks: deployment.localRanks, modelIdentity: identity,
            model: modelPath, blockSize: config.cache.blockSize)
        let address = EngineRPCAddress.tcp(host: deployment.address, port: deployment.rpcPort)
        let acceptor: RemoteRankAcceptor
        do {
            acceptor = try RemoteRankAcceptor(
                address: address, secret: config.internalSecret!, admission: admission, liveness: liveness, logger: logger)
        } catch {
            throw ServeStartupError(
                "cannot listen for headless nodes at \(address) (--data-parallel-address, --data-parallel-rpc-port): \(error)")
        }
        acceptor.start()
        logger.info("listening for data-parallel ranks \(ranks.map(String.init).joined(separator: ", ")) at \(acceptor.address)")
        return RemoteRanks(acceptor: acceptor, ranks: ranks, origin: origin, logger: logger)
    }

    /// Logs a lost remote rank; the server keeps serving on the others (or waits, when none is left).
    func rankLost(_ rank: Int, reason: String, noneLeft: Bool) {
        if origin == .ray {
            logger.error(
                "data-parallel rank \(rank) (Ray actor) lost: \(reason); \(noneLeft ? "no rank is serving: requests fail" : "its unstarted requests go to the other ranks, streaming ones failed; serving on the rest")"
            )
            return
        }
        if noneLeft {
            logger.critical(
                "data-parallel rank \(rank) (headless node) lost: \(reason); no rank is serving: requests fail until a rank rejoins at \(acceptor.address)"
            )
        } else {
            logger.error(
                "data-parallel rank \(rank) (headless node) lost: \(reason); its unstarted requests go to the other ranks, streaming ones failed; it rejoins when its node is started again"
            )
        }
    }

    /// Lets ranks that come back rejoin `dp`.
    func serve(_ dp: DataParallelEngineClient, liveness: EngineRPCLiveness) {
        acceptor.serve(isServing: { dp.isUp($0) }) { client in
            try dp.rejoin(rank: client.handshakeInfo.dataParallelRank, client: AsyncEngineClient(rpc: client, liveness: liveness))
        }
    }

    /// Stops accepting and tells the remote engine cores to shut down (their nodes then exit).
    func shutdown(_ engine: EngineClient) {
        acceptor.stop()
        guard let dp = engine as? DataParallelEngineClient else { return }
        for r in ranks where r < dp.numRanks { dp.client(r).rpc.shutdown() }
    }
}
