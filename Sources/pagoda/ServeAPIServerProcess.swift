import CPagodaSystem
import Foundation
import Logging
import PagodaDistributed
import PagodaEngine
import PagodaServer

/// One of the K API-server processes of `pagoda serve --api-server-count K` (this binary, `serve` with the
/// hidden `--api-server-index k`): it templates, tokenizes, detokenizes and serves HTTP on the port it shares
/// with the others (SO_REUSEPORT), and balances over every engine core of the supervising `pagoda serve`,
/// which it reaches at `--engine-rpc-address` (one per local rank, in rank order). Its port opens while
/// the engine cores still load: until it has connected to every one, it answers 503 (`StartingEngineClient`).
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
    /// How long the engine cores may take to load at start-up (the supervisor waits as long for them).
    static let engineWaitSeconds: Double = 600

    func run() async throws {
        signal(SIGINT, SIG_IGN)
        // SIGTERM while the tokenizer loads ends the process at once; from when the port opens (before the
        // engine cores are up), `runOnSharedPort` handles SIGTERM with the drain.
        _ = pagoda_set_parent_death_signal(SIGTERM, getppid())

        ServeLogging.bootstrap(dataParallel: nil, process: "api-server")
        var tagged = Logger(label: "pagoda.api-server")
        tagged[metadataKey: "api_server"] = "\(index)/\(count)"
        let logger = tagged

        let tokenizer: ServingTokenizer
        do { tokenizer = try TokenizerAdapter(directory: modelPath) } catch {
            throw ServeStartupError("cannot load the tokenizer of \(modelPath): \(error)")
        }
        // The shared port opens now: until every engine core has loaded its model and this process has
        // connected to it, `/health` and every route that needs the engine answer 503 (`StartingEngineClient`).
        let starting = StartingEngineClient(model: modelPath)
        let ranks = Array(deployment.localRanks)
        let serverConfig = server.makeServerConfig(
            served: served, modelPath: modelPath, chat: chat, dataParallelRank: ranks[0], dataParallelSize: deployment.size)
        let metrics = ServerMetrics(modelName: served[0], dataParallelRank: ranks[0], engineRanks: ranks)
        metrics.labelAPIServer(index: index, count: count, pid: Int(getpid()))
        let serving = OpenAIServing(config: serverConfig, tokenizer: tokenizer, engine: starting, metrics: metrics, logger: logger)
        let host = server.host
        let (index, count) = (self.index, self.count)
        let apiServer = Task {
            try await APIServer(serving: serving, logger: logger).runOnSharedPort { port in
                logger.info(
                    "API server \(index) of \(count) (pid \(getpid())) on http://\(host):\(port) serving \(served.joined(separator: ", ")) (503 until the engine cores are up)"
                )
            }
        }
        // The server stopped (SIGTERM from the supervisor) or failed before the engine cores were up: exit here.
        Task {
            let result = await apiServer.result
            guard !starting.isReady else { return }
            if case .failure(let error) = result {
                logger.critical("API server \(index) failed while the engine cores were starting: \(error)")
                Foundation.exit(1)
            }
            Foundation.exit(0)
        }
        // Connecting waits while the engine cores load: on a thread of its own, not on the server's.
        let dp = try await withCheckedThrowingContinuation { (done: CheckedContinuation<DataParallelEngineClient, Error>) in
            Thread.detachNewThread { done.resume(with: Result { try connectEngineCores(logger: logger) }) }
        }
        starting.ready(dp)
        logger.info("API server \(index): the engine cores are up; serving over ranks \(ranks.map(String.init).joined(separator: ","))")
        do { try await apiServer.value } catch {
            throw ServeStartupError("API server \(index) failed: \(error)")
        }
    }

    /// Connects to every engine core of the supervisor (waiting up to `engineWaitSeconds` for each while it
    /// loads), balances over them and watches them: a lost rank is waited for (`--restart-engines`) or ends
    /// the process when no rank is left.
    private func connectEngineCores(logger: Logger) throws -> DataParallelEngineClient {
        var clients: [AsyncEngineClient] = []
        for (i, address) in addresses.enumerated() {
            do {
                let rpc = try SharedEngineCoreLink.connect(to: address, secret: secret, timeout: Self.engineWaitSeconds)
                clients.append(AsyncEngineClient(rpc: rpc))
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
        return dp
    }
}
