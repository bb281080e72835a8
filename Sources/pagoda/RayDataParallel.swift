import ArgumentParser
import Foundation
import Logging
import PagodaDistributed
import PagodaEngine
import PagodaServer

/// `--data-parallel-backend ray`, as the flags ask for it: how many ranks go on the head node, the pack
/// strategy, and how to reach Ray. Checked once at the command-line edge.
struct RayDataParallelPlan {
    /// `--data-parallel-size-local`: ranks on the head node (strict: on every node used); nil: as many as fit.
    var localRanks: Int?
    var strategy: RayPackStrategy
    var settings: RaySettings

    init(server: ServerArgs, node: DataParallelNodeArgs, frontEnd: FrontEndArgs, environment: [String: String]) throws {
        func refuse(_ flag: String) -> ValidationError {
            ValidationError("--data-parallel-backend ray cannot be used with \(flag): Ray places every rank behind this one server")
        }
        if node.headless { throw refuse("--headless") }
        if server.dataParallelRank != nil { throw refuse("--data-parallel-rank") }
        if node.dataParallelStartRank != nil { throw refuse("--data-parallel-start-rank") }
        if frontEnd.hybridLB { throw refuse("--data-parallel-hybrid-lb") }
        if frontEnd.externalLB { throw refuse("--data-parallel-external-lb") }
        if let n = node.apiServerCount, n > 1 { throw refuse("--api-server-count \(n)") }
        if let l = node.dataParallelSizeLocal, !(0...server.dataParallelSize).contains(l) {
            throw ValidationError(
                "invalid --data-parallel-size-local \(l): must be between 0 and --data-parallel-size \(server.dataParallelSize)")
        }
        localRanks = node.dataParallelSizeLocal
        strategy = try RayEnvironment.packStrategy(environment)
        settings = try RayEnvironment.settings(environment)
    }
}

/// The Ray side of a `--data-parallel-backend ray` server: one placement group per data-parallel rank (its
/// T × P bundles, the head node first), an actor per rank running `pagoda engine-core --remote` on the rank's
/// node, which joins this server's `RemoteRankAcceptor` over TCP exactly as a headless node's rank does. Ray
/// reports a process or actor that ends; the rank's connection closing marks it down. Ray restarts nothing
/// (actors have max_restarts=0). `shutdown` removes the actors and placement groups.
final class RayDataParallel {
    let session: RaySession
    let plan: RayDataParallelPlan
    let job: String
    private let logger: Logger

    private init(session: RaySession, plan: RayDataParallelPlan, logger: Logger) {
        self.session = session
        self.plan = plan
        self.logger = logger
        job = "serve\(getpid())"
    }

    /// Connects to the running cluster (bounded wait) and logs its nodes.
    static func connect(_ plan: RayDataParallelPlan, logger: Logger) throws -> RayDataParallel {
        let session: RaySession
        do { session = try RaySession(settings: plan.settings) } catch { throw ServeStartupError("\(error)") }
        logger.info(
            "Ray cluster: \(session.nodes.count) node(s) (\(session.nodes.map(\.ip).joined(separator: ", "))); this node is \(session.headIP)"
        )
        return RayDataParallel(session: session, plan: plan, logger: logger)
    }

    /// The deployment with the head's acceptor on this node's Ray address (unless `--data-parallel-address`
    /// says otherwise) and a free port (unless `--data-parallel-rpc-port` is given).
    func headDeployment(_ d: DataParallelDeployment, address: String?, port: Int?) -> DataParallelDeployment {
        var d = d
        d.address = address ?? session.headIP
        d.rpcPort = port ?? 0
        return d
    }

    /// Places every rank and starts its engine core, which then joins `head`.
    /// The deployment's secret reaches each engine core in its environment (`InternalSecretArgs.variable`).
    func launch(base: EngineConfig, size: Int, head: EngineRPCAddress, settings: DataParallelNodeSettings, secret: PeerSecret) throws {
        let workers = base.parallel.worldSize
        let placed: [RayPlacedRank]
        do {
            placed = try session.place(
                job: job, ranks: size, localRanks: plan.localRanks, bundlesPerRank: workers, bundle: plan.settings.bundle,
                strategy: plan.strategy, timeoutSeconds: min(plan.settings.placementTimeoutSeconds, settings.readyTimeout))
        } catch { throw ServeStartupError("\(error)") }
        session.onExit { [logger] rank, reason in
            logger.error("data-parallel rank \(rank): Ray reports that \(reason); Ray restarts nothing")
        }
        for p in placed {
            var c = base
            c.parallel.dataParallelRank = p.rank
            c.parallel.dataParallelSize = size
            if workers > 1 {
                // The rank's own workers go into the bundles of its placement group.
                var ray = plan.settings
                ray.placementGroup = p.placementGroup
                ray.bundleHosts = p.nodeIPs
                ray.engineHost = p.nodeIPs.first  // the engine core runs in bundle 0
                c.parallel.ray = ray
                c.parallel.distributedExecutorBackend = .ray
            }
            let argv = [
                PagodaExecutable.path, "engine-core", "--engine-config-json", String(decoding: try JSONEncoder().encode(c), as: UTF8.self),
                "--rpc-address", head.description, "--remote", "--connect-timeout", String(settings.readyTimeout),
                "--heartbeat-timeout", String(settings.heartbeatTimeout),
            ]
            do {
                let started = try session.start(
                    job: job, rank: p.rank, argv: argv, environment: [InternalSecretArgs.variable: secret.text])
                logger.info(
                    "data-parallel rank \(p.rank): engine core started by Ray on \(started.nodeIP) (pid \(started.pid), placement group \(p.placementGroup), bundles on \(p.nodeIPs.joined(separator: ", ")))"
                )
            } catch { throw ServeStartupError("cannot start data-parallel rank \(p.rank) on Ray: \(error)") }
        }
    }

    /// Stops the actors (their engine cores) and removes the placement groups.
    func shutdown() {
        if let removed = session.shutdown() {
            logger.info("Ray: \(removed.actors) actor(s) stopped, \(removed.placementGroups) placement group(s) removed")
        } else {
            logger.warning("Ray: the helper did not confirm the shutdown; its placement groups go when its job ends")
        }
    }
}
