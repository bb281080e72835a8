import ArgumentParser
import CPagodaSystem
import Foundation
import Logging
import PagodaDistributed
import PagodaEngine
import PagodaServer

/// `pagoda engine-core` (hidden): one engine core process, started by `pagoda serve`. It connects
/// to the front-end's engine RPC address, loads the model, sends its handshake, and serves
/// requests until the front-end says shutdown or goes away. With `--rpc-listen` (several API servers,
/// `--api-server-count K`) it listens instead, serves every front-end that connects (`EngineCoreRPCHub`),
/// and runs until SIGTERM or until its parent (`pagoda serve`) dies.
struct EngineCoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine-core", abstract: "Run one engine core process (started by serve; hidden).", shouldDisplay: false)

    @Option(name: .customLong("engine-config-json"), help: "The EngineConfig, as JSON.")
    var engineConfigJSON: String

    @Option(name: .customLong("rpc-address"), help: "The front-end's engine RPC address (unix:/path or tcp://host:port).")
    var rpcAddress: String?

    @Option(name: .customLong("rpc-listen"), help: "Listen here for front-ends instead (several API servers share this engine core).")
    var rpcListen: String?

    @Flag(
        name: .customLong("remote"),
        help:
            "An engine core of a headless node: load the model first, then connect to the head (retrying up to --connect-timeout), with heartbeats."
    )
    var remote = false

    @Option(name: .customLong("connect-timeout"), help: "Seconds to keep trying to reach the front-end.")
    var connectTimeout: Double = 30

    @Option(name: .customLong("heartbeat-timeout"), help: "With --remote: seconds of silence after which the head counts as lost.")
    var heartbeatTimeout: Double = 10

    @OptionGroup var secretArgs: InternalSecretArgs

    /// The deployment's secret: `pagoda serve` hands it over on stdin (`--internal-secret-file /dev/stdin`).
    func internalSecret() throws -> PeerSecret {
        guard let s = try secretArgs.configured() else {
            throw ValidationError(
                "engine-core needs the deployment's secret (\(InternalSecretArgs.flag) or \(InternalSecretArgs.variable))")
        }
        return s
    }

    func validate() throws {
        guard (rpcAddress == nil) != (rpcListen == nil) else {
            throw ValidationError("exactly one of --rpc-address and --rpc-listen is needed")
        }
        guard !(remote && rpcListen != nil) else {
            throw ValidationError("--remote connects to a head; it cannot be used with --rpc-listen")
        }
    }

    func run() throws {
        setvbuf(stdout, nil, _IOLBF, 0)
        // Ctrl-C reaches the whole process group: the front-end shuts the engine down in order, and
        // the engine exits by itself when the front-end's connection closes. A remote engine core's
        // front-end is on another node: signals end it (its headless node stops it so).
        if let rpcListen { return try runShared(listen: try EngineRPCAddress(parsing: rpcListen)) }
        if !remote {
            signal(SIGINT, SIG_IGN)
            signal(SIGTERM, SIG_IGN)
        } else {
            // A headless node's engine core dies with its node process (even a killed one).
            _ = pagoda_set_parent_death_signal(SIGTERM, getppid())
        }
        let address = try EngineRPCAddress(parsing: rpcAddress!)
        var config: EngineConfig
        do { config = try JSONDecoder().decode(EngineConfig.self, from: Data(engineConfigJSON.utf8)) } catch {
            throw ValidationError("invalid --engine-config-json: \(error)")
        }
        let secret = try internalSecret()
        config.internalSecret = secret
        let dp = config.parallel.dataParallelSize > 1 ? (config.parallel.dataParallelRank, config.parallel.dataParallelSize) : nil
        ServeLogging.bootstrap(dataParallel: dp, process: "engine-core")
        let logger = Logger(label: "pagoda.engine-core")

        // A local engine core connects first (its front-end watches it load); a remote one loads first, so the
        // head sees its hello as soon as it connects.
        var connection: EngineRPCConnection?
        if !remote { connection = try EngineRPCConnection.connect(to: address, secret: secret, timeout: connectTimeout) }
        let core: EngineCore
        let identity: String
        do {
            core = try EngineCore(config: config)
            identity = try ModelFingerprint.of(path: config.model.path)
        } catch {
            try? connection?.send(.failure("\(error)"))
            logger.error("engine core failed to start: \(error)")
            throw ExitCode(1)
        }
        if connection == nil {
            logger.info("model loaded; connecting to the head at \(address) (up to \(Int(connectTimeout)) s)")
            do { connection = try EngineRPCConnection.connect(to: address, secret: secret, timeout: connectTimeout) } catch {
                logger.error("cannot reach the head at \(address) within \(Int(connectTimeout)) s: \(error)")
                throw ExitCode(1)
            }
        }
        guard let connection else { throw ExitCode(1) }
        let handshake = Self.hello(core, identity: identity, address: connection.localIPv4Address ?? "")
        let server = EngineCoreRPCServer(
            connection: connection, handshake: handshake, backend: Self.engineThread(core, config: config, logger: logger),
            liveness: remote ? EngineRPCLiveness(timeout: heartbeatTimeout) : nil)
        if remote { logger.info("joining the head at \(address) as data-parallel rank \(config.parallel.dataParallelRank)") }
        let exit = server.run()
        switch exit {
        case .shutdownRequested:
            logger.info("engine core shut down")
        case .frontEndGone(let why):
            logger.error("engine core exiting: \(why)")
            throw ExitCode(1)
        }
    }
}

extension EngineCoreCommand {
    /// The hello this engine core sends its front-ends: what it loaded and the limits it checks requests against.
    static func hello(_ core: EngineCore, identity: String, address: String) -> EngineHandshake {
        let c = core.config
        return EngineHandshake(
            model: c.model.path, numBlocks: core.numBlocks, blockSize: c.cache.blockSize, maxModelLen: core.maxModelLen,
            vocabSize: core.modelInfo.vocabSize, eosTokenIds: core.modelInfo.eosTokenIds,
            dataParallelRank: c.parallel.dataParallelRank, dataParallelSize: c.parallel.dataParallelSize, pid: Int(getpid()),
            modelIdentity: identity, address: address, maxLogprobs: core.maxLogprobs)
    }

    /// The engine loop; a dead or failed worker ends the process (its requests were failed first), so that
    /// `pagoda serve` restarts the engine core with fresh workers instead of keeping one that fails every step.
    static func engineThread(_ core: EngineCore, config: EngineConfig, logger: Logger) -> EngineCoreThread {
        let thread = EngineCoreThread(core: core, publishKVEvents: config.cache.enablePrefixCaching)
        thread.onUnrecoverableError = { why in
            logger.critical("engine core cannot go on: \(why); exiting")
            Foundation.exit(1)
        }
        return thread
    }

    /// The engine core shared by several API servers: binds `listen` first (front-ends may connect while
    /// the model loads; they get the handshake once it is loaded), then serves them all until SIGTERM from
    /// `pagoda serve` or its death.
    func runShared(listen: EngineRPCAddress) throws {
        // Die with the supervising `pagoda serve`, whatever killed it.
        _ = pagoda_set_parent_death_signal(SIGTERM, getppid())
        var config: EngineConfig
        do { config = try JSONDecoder().decode(EngineConfig.self, from: Data(engineConfigJSON.utf8)) } catch {
            throw ValidationError("invalid --engine-config-json: \(error)")
        }
        let secret = try internalSecret()
        config.internalSecret = secret
        let dp = config.parallel.dataParallelSize > 1 ? (config.parallel.dataParallelRank, config.parallel.dataParallelSize) : nil
        ServeLogging.bootstrap(dataParallel: dp, process: "engine-core")
        let logger = Logger(label: "pagoda.engine-core")
        let listener = try EngineRPCListener(address: listen, secret: secret)
        let core: EngineCore
        let identity: String
        do {
            core = try EngineCore(config: config)
            identity = try ModelFingerprint.of(path: config.model.path)
        } catch {
            logger.error("engine core failed to start: \(error)")
            throw ExitCode(1)
        }
        // The front-ends are the API servers of this host (they reach it over a unix socket): no address.
        let handshake = Self.hello(core, identity: identity, address: "")
        let hub = EngineCoreRPCHub(
            listener: listener, handshake: handshake, backend: Self.engineThread(core, config: config, logger: logger),
            log: { logger.info("\($0)") })
        let term = DispatchSource.makeSignalSource(signal: SIGTERM, queue: .global())
        term.setEventHandler { hub.stop() }
        term.resume()
        hub.run()
        logger.info("engine core shut down")
    }
}
