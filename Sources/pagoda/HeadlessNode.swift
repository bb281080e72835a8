import Foundation
import Logging
import PagodaEngine
import PagodaServer

/// `pagoda serve --headless` (vLLM's headless mode): this node runs only its engine cores, ranks
/// `startRank ..< startRank + localSize`, each of which loads the model and joins the head over TCP (retrying
/// up to the ready timeout; heartbeats both ways). No API server.
///
/// The node lives and dies as one: when one of its engine cores exits (killed, refused by the head, the head
/// lost: no heartbeat for the heartbeat timeout), it stops the others and exits — non-zero unless the head
/// shut it down. Started again with the same command, its ranks join the head again.
enum HeadlessNode {
    static func run(config: EngineConfig, settings: DataParallelNodeSettings, logger: Logger) throws -> Never {
        let d = settings.deployment
        let head = EngineRPCAddress.tcp(host: d.address, port: d.rpcPort)
        logger.info(
            "headless node: data-parallel ranks \(d.localRanks.lowerBound)..<\(d.localRanks.upperBound) of \(d.size) join the head at \(head)"
        )
        var children: [(rank: Int, process: Process)] = []
        let stopAll: () -> Void = {
            for c in children where c.process.isRunning { kill(c.process.processIdentifier, SIGTERM) }
            let deadline = Date().addingTimeInterval(5)
            while children.contains(where: { $0.process.isRunning }) && Date() < deadline { usleep(20_000) }
            for c in children where c.process.isRunning { kill(c.process.processIdentifier, SIGKILL) }
        }
        for (i, r) in d.localRanks.enumerated() {
            var c = config
            c.parallel.dataParallelRank = r
            c.parallel.dataParallelSize = d.size
            if d.localSize > 1 { c.parallel.engineCPUs = WorkerCPUPlacement.engineShare(index: i, count: d.localSize) }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: PagodaExecutable.path)
            p.arguments =
                [
                    "engine-core", "--engine-config-json", String(decoding: try JSONEncoder().encode(c), as: UTF8.self),
                    "--rpc-address", head.description, "--remote", "--connect-timeout", String(settings.readyTimeout),
                    "--heartbeat-timeout", String(settings.heartbeatTimeout),
                ] + ChildSecret.arguments
            p.standardInput = ChildSecret.pipe(config.internalSecret!)
            do { try p.run() } catch {
                stopAll()
                throw ServeStartupError("cannot start the engine core of rank \(r): \(error)")
            }
            children.append((r, p))
            logger.info("engine core rank \(r) started (pid \(p.processIdentifier))")
        }

        // SIGTERM / Ctrl-C: stop the engine cores (the head sees their connections close) and exit.
        let signals = [SIGTERM, SIGINT].map { sig -> DispatchSourceSignal in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                logger.info("stopping this node's engine cores")
                stopAll()
                Foundation.exit(0)
            }
            source.resume()
            return source
        }
        _ = signals

        while true {
            if let gone = children.first(where: { !$0.process.isRunning }) {
                let how = EngineCoreProcess.describeExit(gone.process)
                let clean = gone.process.terminationReason == .exit && gone.process.terminationStatus == 0
                if clean {
                    logger.info("engine core rank \(gone.rank) was shut down by the head; stopping this node")
                } else {
                    logger.error("engine core rank \(gone.rank) \(how); stopping this node's other engine cores")
                }
                stopAll()
                Foundation.exit(clean ? 0 : 1)
            }
            usleep(100_000)
        }
    }
}
