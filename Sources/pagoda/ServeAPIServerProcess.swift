import CPagodaSystem
import Foundation
import Logging
import PagodaDistributed
import PagodaEngine
import PagodaServer

/// One of the K API-server processes of `pagoda serve --api-server-count K` (this binary, `serve` with the
/// hidden `--api-server-index k`): it templates, tokenizes, detokenizes and serves HTTP on the port it shares
/// with the others (SO_REUSEPORT), and balances over every engine core of the supervising `pagoda serve`,
/// which it reaches at `--engine-rpc-address` (one per local rank, in rank order).
///
/// Its engine cores belong to the supervisor: when one goes away this process marks the rank down (as with
/// one API server) and connects again once the supervisor has started it again (`--restart-engines`);
/// without restarts it exits when no rank is left. SIGTERM (from the supervisor, or its death) drains it as
/// SIGTERM drains a single server (`--shutdown-timeout`), then it exits; SIGINT is the supervisor's to handle.
struct APIServerProcess {
    let index: Int
    let count: Int
    let deployment: DataParallelDeployment
    let addresses: [EngineRPCAddress]
    /// The deployment's secret (from the supervisor, on stdin), proved to each engine core.
    let secret: PeerSecret
    let modelPath: String
    let served: [String]
    let server: ServerArgs
    let chat: ChatServingConfig

    /// How long a lost engine core is waited for (the supervisor restarts it, and it loads its model again).
    static let rejoinWindow: Double = 900

    func run() async throws {
        signal(SIGINT, SIG_IGN)
        // SIGTERM before the server runs (still connecting to the engine cores) ends the process at once;
        // once it serves, `runOnSharedPort` handles SIGTERM with the drain.
        _ = pagoda_set_parent_death_signal(SIGTERM, getppid())

        ServeLogging.bootstrap(dataParallel: nil, process: "api-server")
        var tagged = Logger(label: "pagoda.api-server")
        tagged[metadataKey: "api_server"] = "\(index)/\(count)"
        let logger = tagged

        let tokenizer: ServingTokenizer
        do { tokenizer = try TokenizerAdapter(directory: modelPath) } catch {
            throw ServeStartupError("cannot load the tokenizer of \(modelPath): \(error)")
        }
        var clients: [AsyncEngineClient] = []
        for (i, address) in addresses.enumerated() {
            do {
                clients.append(AsyncEngineClient(rpc: try SharedEngineCoreLink.connect(to: address, secret: secret, timeout: 120)))
            } catch {
                throw ServeStartupError(
                    "API server \(index): cannot reach engine core rank \(deployment.startRank + i) at \(address): \(error)")
            }
        }
        let policy = EngineSelector.Policy(prefixAware: server.dataParallelRouting == .prefix)
        let dp: DataParallelEngineClient
        do { dp = try DataParallelEngineClient(ranks: clients, firstRank: deployment.startRank, policy: policy) } catch {
            throw ServeStartupError("\(error)")
        }
        let restart = server.restartEngines
        let ranks = Array(deployment.localRanks)
        let addresses = self.addresses
        dp.onRankDown { i, reason in
            if !restart && dp.dead != nil {
                logger.critical("engine core rank \(ranks[i]) lost: \(reason); no rank is left; exiting")
                usleep(300_000)
                Foundation.exit(1)
            }
            logger.error(
                "engine core rank \(ranks[i]) lost: \(reason); its unstarted requests go to the other ranks, streaming ones failed")
            guard restart else { return }
            Thread.detachNewThread {
                let deadline = Date().addingTimeInterval(Self.rejoinWindow)
                while Date() < deadline {
                    usleep(500_000)
                    guard let rpc = try? SharedEngineCoreLink.connect(to: addresses[i], secret: secret, timeout: 30) else { continue }
                    do {
                        try dp.rejoin(rank: i, client: AsyncEngineClient(rpc: rpc))
                        logger.notice("engine core rank \(ranks[i]) is back (pid \(rpc.handshakeInfo.pid)); rejoined")
                        return
                    } catch {
                        rpc.shutdown(reason: "refused: \(error)")
                        logger.error("engine core rank \(ranks[i]) came back but was refused: \(error)")
                    }
                }
                if dp.dead != nil {
                    logger.critical("no engine core rank came back within \(Int(Self.rejoinWindow)) s; exiting")
                    Foundation.exit(1)
                }
            }
        }
        dp.start()

        let serverConfig = server.makeServerConfig(
            served: served, modelPath: modelPath, chat: chat, dataParallelRank: ranks[0], dataParallelSize: deployment.size)
        let metrics = ServerMetrics(modelName: served[0], dataParallelRank: ranks[0], engineRanks: ranks)
        metrics.labelAPIServer(index: index, count: count, pid: Int(getpid()))
        let serving = OpenAIServing(config: serverConfig, tokenizer: tokenizer, engine: dp, metrics: metrics, logger: logger)
        let host = server.host
        let (index, count) = (self.index, self.count)
        do {
            try await APIServer(serving: serving, logger: logger).runOnSharedPort { port in
                logger.info(
                    "API server \(index) of \(count) (pid \(getpid())) on http://\(host):\(port) serving \(served.joined(separator: ", ")) over engine ranks \(ranks.map(String.init).joined(separator: ","))"
                )
            }
        } catch {
            throw ServeStartupError("API server \(index) failed: \(error)")
        }
    }
}
