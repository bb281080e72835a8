import ArgumentParser
import Foundation
import Logging
import PagodaDistributed
import PagodaEngine
import PagodaServer

/// `pagoda serve --api-server-count K` with K > 1 (vLLM's multi-API-server mode): this process serves no
/// HTTP itself. It starts this server's engine cores, each listening for front-ends
/// (`pagoda engine-core --rpc-listen`) and, at once, K API-server processes (this binary: `serve`, the same
/// arguments, and the hidden `--api-server-index k` and `--engine-rpc-address`), which share the port,
/// answer 503 while the engine cores load, and each connect to every engine core once it is up.
///
/// Supervision: an API server that exits is logged and started again, up to `maxRestarts` times per index
/// (then the whole serve stops, exit 1). An engine core that exits is logged and, with `--restart-engines`
/// (the default), started again at the same address after a back-off (up to `maxRestarts` times), and the
/// API servers reconnect to it; without restarts the serve stops (exit 1) once no engine core is left.
/// SIGINT or SIGTERM stops the API servers, then the engine cores, and exits 0.
final class APIServerSupervisor: @unchecked Sendable {
    static let maxRestarts = 5

    private let configs: [EngineConfig]
    private let apiServerCount: Int
    private let childArguments: [String]
    private let restartEngines: Bool
    /// `--shutdown-timeout`: how long each API server may drain after SIGTERM.
    private let shutdownTimeout: Double
    private let logger: Logger
    private let addresses: [EngineRPCAddress]
    private var engines: [Process] = []
    private var apiServers: [Process] = []
    private let stopLock = NSLock()
    private var stopRequested = false

    /// `childArguments`: this process's `serve ...` command line, reused for the API servers.
    init(
        configs: [EngineConfig], apiServerCount: Int, childArguments: [String], restartEngines: Bool, shutdownTimeout: Double,
        logger: Logger
    ) {
        self.configs = configs; self.apiServerCount = apiServerCount; self.childArguments = childArguments
        self.restartEngines = restartEngines; self.shutdownTimeout = shutdownTimeout; self.logger = logger
        let dir = NSTemporaryDirectory()
        addresses = configs.map { .unix(path: dir + "pagoda-\(getpid())-rank\($0.parallel.dataParallelRank).sock") }
    }

    private var rank: [Int] { configs.map(\.parallel.dataParallelRank) }
    /// The deployment's secret: every child gets it on its stdin (`ChildSecret`).
    private var secret: PeerSecret { configs[0].internalSecret! }

    func run() async throws {
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { [self] in
                stopLock.lock(); stopRequested = true; stopLock.unlock()
            }
            s.resume()
            sources.append(s)
        }
        defer { sources.forEach { $0.cancel() } }

        // Engine cores first: they load in parallel; each is probed for its handshake. The API servers start
        // with them: their port answers 503 until they have connected to every loaded engine core.
        let started = Date()
        apiServers = (0..<apiServerCount).map { _ in Process() }
        do {
            engines = try configs.indices.map { try startEngine($0) }
            for k in 0..<apiServerCount { apiServers[k] = try startAPIServer(k) }
            for i in configs.indices {
                let p = engines[i]
                let rpc = try SharedEngineCoreLink.connect(to: addresses[i], secret: secret, timeout: 600) { [self] in
                    if !p.isRunning {
                        throw ServeStartupError("engine core rank \(rank[i]) exited during start-up (\(EngineCoreProcess.describeExit(p)))")
                    }
                    if isStopRequested { throw ServeStartupError("stopped during start-up") }
                }
                let h = rpc.handshakeInfo
                rpc.shutdown(reason: "start-up probe done")
                logger.info(
                    "engine core rank \(h.dataParallelRank) ready (pid \(h.pid)) in \(String(format: "%.1f", Date().timeIntervalSince(started))) s: \(h.numBlocks) KV blocks of \(h.blockSize) tokens, max model len \(h.maxModelLen)"
                )
            }
        } catch {
            stopAll()
            throw ServeStartupError("engine core failed to start: \(error)")
        }
        logger.info(
            "\(apiServerCount) API servers share port \(portDescription) over \(configs.count) engine core\(configs.count == 1 ? "" : "s")")

        let code = await supervise()
        stopAll()
        if code != 0 { throw ExitCode(code) }
    }

    private var portDescription: String {
        guard let i = childArguments.firstIndex(of: "--port"), i + 1 < childArguments.count else { return "8000" }
        return childArguments[i + 1]
    }

    private var isStopRequested: Bool { stopLock.lock(); defer { stopLock.unlock() }; return stopRequested }

    /// Watches the children until a stop is requested (0) or the serve cannot go on (1).
    private func supervise() async -> Int32 {
        var apiRestarts = [Int](repeating: 0, count: apiServerCount)
        var engineRestarts = [Int](repeating: 0, count: configs.count)
        var engineRestartAt: [Int: Date] = [:]
        var engineGone = Set<Int>()
        while !isStopRequested {
            try? await Task.sleep(nanoseconds: 100_000_000)
            if isStopRequested { break }
            for k in apiServers.indices where !apiServers[k].isRunning {
                let how = EngineCoreProcess.describeExit(apiServers[k])
                apiRestarts[k] += 1
                guard apiRestarts[k] <= Self.maxRestarts else {
                    logger.critical(
                        "API server \(k) (pid \(apiServers[k].processIdentifier)) \(how); it exited \(apiRestarts[k]) times, giving up; stopping"
                    )
                    return 1
                }
                logger.error(
                    "API server \(k) (pid \(apiServers[k].processIdentifier)) \(how); starting it again (restart \(apiRestarts[k]) of \(Self.maxRestarts))"
                )
                do { apiServers[k] = try startAPIServer(k) } catch {
                    logger.critical("cannot start API server \(k) again: \(error); stopping")
                    return 1
                }
            }
            for i in engines.indices where !engineGone.contains(i) && engineRestartAt[i] == nil && !engines[i].isRunning {
                let how = EngineCoreProcess.describeExit(engines[i])
                engineRestarts[i] += 1
                if restartEngines && engineRestarts[i] <= Self.maxRestarts {
                    let delay = min(4.0, 0.5 * Double(1 << (engineRestarts[i] - 1)))
                    logger.error(
                        "engine core rank \(rank[i]) (pid \(engines[i].processIdentifier)) \(how); starting it again in \(delay) s (restart \(engineRestarts[i]) of \(Self.maxRestarts)); the API servers reconnect"
                    )
                    engineRestartAt[i] = Date().addingTimeInterval(delay)
                } else {
                    logger.error("engine core rank \(rank[i]) (pid \(engines[i].processIdentifier)) \(how); not restarted")
                    engineGone.insert(i)
                    if engineGone.count == engines.count {
                        logger.critical("no engine core is left; stopping")
                        return 1
                    }
                }
            }
            for (i, at) in engineRestartAt where at <= Date() {
                engineRestartAt[i] = nil
                do {
                    engines[i] = try startEngine(i)
                    logger.notice("engine core rank \(rank[i]) started again (pid \(engines[i].processIdentifier))")
                } catch {
                    logger.error("engine core rank \(rank[i]) does not start: \(error)")
                    engineGone.insert(i)
                    if engineGone.count == engines.count { return 1 }
                }
            }
        }
        logger.info("shutting down \(apiServerCount) API servers and \(engines.count) engine core\(engines.count == 1 ? "" : "s")")
        return 0
    }

    private func startEngine(_ i: Int) throws -> Process {
        let json = String(decoding: try JSONEncoder().encode(configs[i]), as: UTF8.self)
        return try spawn(["engine-core", "--engine-config-json", json, "--rpc-listen", addresses[i].description])
    }

    private func startAPIServer(_ k: Int) throws -> Process {
        try spawn(childArguments + ["--api-server-index", String(k)] + addresses.flatMap { ["--engine-rpc-address", $0.description] })
    }

    private func spawn(_ arguments: [String]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: PagodaExecutable.path)
        p.arguments = arguments + ChildSecret.arguments
        p.standardInput = ChildSecret.pipe(secret)
        try ChildSpawner.shared.run { try p.run() }
        return p
    }

    /// SIGTERM to the API servers (each drains for up to `shutdownTimeout`), then to the engine cores;
    /// whatever is still running after its grace period is killed. Removes the engine sockets.
    private func stopAll() {
        for (group, grace) in [(apiServers, shutdownTimeout + 10), (engines, 10)] {
            for p in group where p.processIdentifier > 0 && p.isRunning { kill(p.processIdentifier, SIGTERM) }
            let deadline = Date().addingTimeInterval(grace)
            while group.contains(where: { $0.processIdentifier > 0 && $0.isRunning }) && Date() < deadline { usleep(20_000) }
            for p in group where p.processIdentifier > 0 && p.isRunning { kill(p.processIdentifier, SIGKILL) }
        }
        for case .unix(let path) in addresses { unlink(path) }
    }
}

/// Starts child processes from one thread that lives as long as this process. The children set
/// `PR_SET_PDEATHSIG`, which Linux fires when the *thread* that forked them exits, not the process; spawned
/// from a pool thread that later retires, an API server or engine core would get a SIGTERM while its
/// supervisor still runs (an API server would start draining).
final class ChildSpawner: @unchecked Sendable {
    static let shared = ChildSpawner()

    private let lock = NSCondition()
    private var jobs: [() -> Void] = []

    private init() {
        let thread = Thread { [self] in
            while true {
                lock.lock()
                while jobs.isEmpty { lock.wait() }
                let job = jobs.removeFirst()
                lock.unlock()
                job()
            }
        }
        thread.name = "pagoda-child-spawner"
        thread.start()
    }

    /// Runs `body` on the spawner thread and returns what it returns (or throws what it throws).
    func run<T>(_ body: @escaping () throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        var result: Result<T, Error>!
        lock.lock()
        jobs.append {
            result = Result { try body() }
            done.signal()
        }
        lock.signal()
        lock.unlock()
        done.wait()
        return try result.get()
    }
}
