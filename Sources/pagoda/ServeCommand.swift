import ArgumentParser
import Foundation
import Logging
import PagodaDistributed
import PagodaEngine
import PagodaServer

/// `pagoda serve [MODEL]`: the OpenAI-compatible API server (vLLM's `vllm serve`). The engine core
/// runs in its own process (`pagoda engine-core`), joined by the engine RPC; if it dies, the
/// server fails what is in flight and starts it again (`--no-restart-engines`: exits non-zero).
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Serve a model behind an OpenAI-compatible HTTP API.")

    @Argument(help: "Model folder (config.json, *.safetensors, tokenizer.json). Default: the small model in models/tiny-qwen3.")
    var model: String?

    @OptionGroup(title: "Server options") var server: ServerArgs
    @OptionGroup(title: "Engine options") var engine: EngineArgs
    @OptionGroup(title: "Multi-node data parallel options") var node: DataParallelNodeArgs
    @OptionGroup(title: "Chat options") var chat: ChatServingArgs
    @OptionGroup(title: "Front-end and data-parallel load balancing options") var frontEnd: FrontEndArgs
    @OptionGroup(title: "Internal connection security") var secretArgs: InternalSecretArgs

    func validate() throws {
        try server.validate()
        try chat.validate()
        _ = try DataParallelNodeSettings(server: server, node: node, frontEnd: frontEnd)
    }

    func run() async throws {
        setvbuf(stdout, nil, _IOLBF, 0)
        let modelPath = try ServedModelFolder.resolve(model)
        let chatConfig = try chat.makeConfig()
        var config = try engine.makeConfig(model: modelPath)
        // `--data-parallel-size N` alone: N engine cores behind this server (internal load balancing); with
        // `--data-parallel-size-local L` the other N - L ranks join from headless nodes (multi-node); with
        // `--data-parallel-rank r` this server is one rank of N (external), with `--data-parallel-hybrid-lb`
        // it runs this node's ranks (hybrid). Ranks are global everywhere (logs, /load, /metrics).
        let multiNode = try DataParallelNodeSettings(server: server, node: node, frontEnd: frontEnd)
        var deployment = multiNode.deployment
        let external = deployment.loadBalancing == .external
        let dpSize = deployment.size
        let localRanks = Array(deployment.localRanks)
        // The ranks behind this server, in the order of the data-parallel client's indices: local ones first
        // (they start at 0 on a head), then those joining from headless nodes.
        let allRanks = deployment.loadBalancing == .internal ? Array(0..<dpSize) : localRanks
        config.parallel.dataParallelSize = dpSize
        config.parallel.dataParallelRank = allRanks[0]
        // Processes this command starts share a random secret; processes started elsewhere need a configured one.
        let secretNeededBy: String? =
            deployment.headless
            ? "a headless node (--headless)"
            : !deployment.remoteRanks.isEmpty && multiNode.ray == nil
                ? "a head whose ranks join from headless nodes"
                : config.kvTransfer?.connector == .tcp ? "--kv-transfer-config with \(config.kvTransfer!.connectorName)" : nil
        config.internalSecret = try secretArgs.resolve(requiredFor: secretNeededBy)
        if config.kvTransfer != nil && allRanks.count > 1 {
            throw ValidationError(
                "invalid --kv-transfer-config: one KV connector per server for now; run one server per "
                    + "data-parallel rank (--data-parallel-rank r) and list them all in pagoda disagg-proxy")
        }
        let served = server.servedModelName.isEmpty ? [model ?? "tiny-qwen3"] : server.servedModelName
        if let index = frontEnd.apiServerIndex {
            let addresses = try frontEnd.engineRPCAddresses.map { try EngineRPCAddress(parsing: $0) }
            guard addresses.count == localRanks.count else {
                throw ValidationError("--engine-rpc-address: \(addresses.count) given, \(localRanks.count) ranks run here")
            }
            try await APIServerProcess(
                index: index, count: multiNode.apiServerCount, deployment: deployment, addresses: addresses,
                secret: config.internalSecret!,
                modelPath: modelPath, served: served, server: server, chat: chatConfig
            ).run()
            return
        }
        ServeLogging.bootstrap(dataParallel: external && dpSize > 1 ? (allRanks[0], dpSize) : nil)
        let logger = Logger(label: "pagoda.serve")
        for note in deployment.notes { logger.warning("\(note)") }
        // The DP engines of a MoE model under expert parallelism form one expert-parallel group and step in waves.
        try ExpertParallelDeployment.assignGroups(&config, deployment: deployment, settings: multiNode, logger: logger)
        if deployment.headless { try HeadlessNode.run(config: config, settings: multiNode, logger: logger) }
        // `--data-parallel-backend ray`: Ray places every rank's engine core; each joins like a headless node's rank.
        let rayDP = try multiNode.ray.map { try RayDataParallel.connect($0, logger: logger) }
        if let rayDP {
            deployment = rayDP.headDeployment(deployment, address: server.dataParallelAddress, port: server.dataParallelRPCPort)
        }

        if server.trustRemoteCode { logger.notice("--trust-remote-code has no effect: Pagoda runs no model code from the model folder") }
        if server.enforceEager { logger.notice("--enforce-eager has no effect: Pagoda has no graph capture on CPUs") }
        if dpSize > 1 {
            let layout = rayDP.map { "data parallel size \(dpSize): every rank placed by Ray (pack strategy \($0.plan.strategy.rawValue))" }
            logger.info("\(layout ?? deployment.summary)\(allRanks.count > 1 ? ", \(server.dataParallelRouting.rawValue) routing" : "")")
        }
        try ListenPortCheck.ensureFree(host: server.host, port: server.port)
        let configs = deployment.engineConfigs(base: config)
        if multiNode.apiServerCount > 1 {
            try await APIServerSupervisor(
                configs: configs, apiServerCount: multiNode.apiServerCount,
                childArguments: ChildSecret.strip(Array(CommandLine.arguments.dropFirst())),
                restartEngines: server.restartEngines, shutdownTimeout: server.shutdownTimeout, logger: logger
            ).run()
            return
        }

        // The front-end's own half: the tokenizer and chat template.
        let tokenizer: ServingTokenizer
        do { tokenizer = try TokenizerAdapter(directory: modelPath) } catch {
            throw ServeStartupError("cannot load the tokenizer of \(modelPath): \(error)")
        }

        // Remote ranks (multi-node): listen for them before the local engines load, so both load at once.
        let remote = try RemoteRanks.listen(
            deployment: deployment, config: config, modelPath: modelPath, liveness: EngineRPCLiveness(timeout: multiNode.heartbeatTimeout),
            origin: rayDP != nil ? .ray : .headlessNode, logger: logger)
        if let rayDP, let remote {
            do {
                try rayDP.launch(
                    base: config, size: dpSize, head: remote.acceptor.address, settings: multiNode, secret: config.internalSecret!)
            } catch {
                remote.acceptor.stop()
                rayDP.shutdown()
                throw error
            }
        }

        // The HTTP port opens now: while the engines load (and remote ranks join), `/health` and every route that
        // needs the engine answer 503 (`StartingEngineClient`); the real client takes over once they are up.
        let starting = StartingEngineClient(model: modelPath)
        let serverConfig = server.makeServerConfig(
            served: served, modelPath: modelPath, chat: chatConfig, dataParallelRank: allRanks[0], dataParallelSize: dpSize)
        let metrics = ServerMetrics(modelName: served[0], dataParallelRank: allRanks[0], engineRanks: allRanks)
        let serving = OpenAIServing(config: serverConfig, tokenizer: tokenizer, engine: starting, metrics: metrics, logger: logger)
        let host = server.host
        let apiServer = Task {
            try await APIServer(serving: serving, logger: logger).run { port in
                logger.info(
                    "Pagoda API server on http://\(host):\(port) serving \(served.joined(separator: ", ")) (503 until the engine is up)")
            }
        }
        // SIGTERM or Ctrl-C before the engines are up (the server drained nothing and returned): stop here; the
        // engine cores exit when their connection closes.
        Task {
            let result = await apiServer.result
            guard !starting.isReady else { return }
            if case .failure(let error) = result {
                logger.critical("API server failed while the engine was starting: \(error)")
                Foundation.exit(1)
            }
            logger.info("stopped while the engine was starting")
            Foundation.exit(0)
        }

        // The engine core processes: each loads the model, sizes its KV cache, connects back.
        let started = Date()
        let progress = TerminalProgress(
            message: "Loading \(modelPath) in \(localRanks.count == 1 ? "the engine core" : "\(localRanks.count) engine cores")")
        if !localRanks.isEmpty { progress.start() }
        let initial: [EngineCoreProcess]
        do {
            initial = try EngineCoreProcess.startAll(
                configs: configs, executable: PagodaExecutable.path, startupTimeout: multiNode.readyTimeout)
        } catch {
            progress.stop()
            remote?.acceptor.stop()
            throw ServeStartupError("engine core failed to start: \(error)")
        }
        progress.stop()
        let remoteClients: [Int: EngineCoreRPCClient]
        do { remoteClients = try remote?.acceptor.waitForAll(timeout: multiNode.readyTimeout) ?? [:] } catch {
            for p in initial { p.stop() }
            remote?.acceptor.stop()
            rayDP?.shutdown()
            throw error
        }
        let processes = EngineProcessTable(initial)
        for p in initial {
            let h = p.client.handshakeInfo
            let rank = dpSize > 1 ? "engine core rank \(h.dataParallelRank)" : "engine core"
            logger.info(
                "\(rank) ready (pid \(h.pid)) in \(String(format: "%.1f", Date().timeIntervalSince(started))) s: \(h.numBlocks) KV blocks of \(h.blockSize) tokens, max model len \(h.maxModelLen)"
            )
        }

        let shutdown = ServerShutdownFlag()
        let engineClient: EngineClient
        // One engine core without restarts: its death ends the server. Otherwise (several ranks, or one that is
        // restarted) the ranks sit behind `DataParallelEngineClient`, which marks a dead one down and takes it back.
        if allRanks.count == 1 && initial.count == 1 && !server.restartEngines {
            let one = AsyncEngineClient(rpc: initial[0].client)
            one.onDeath { reason in
                guard !shutdown.isSet else { return }
                let how = processes[0].exitDescription(waiting: 2)
                logger.critical("engine core died (\(how)): \(reason); requests in flight failed; exiting")
                usleep(300_000)  // let the error responses of in-flight requests go out
                Foundation.exit(1)
            }
            one.start()
            engineClient = one
        } else {
            let policy = EngineSelector.Policy(prefixAware: server.dataParallelRouting == .prefix)
            let dp: DataParallelEngineClient
            do {
                let liveness = EngineRPCLiveness(timeout: multiNode.heartbeatTimeout)
                dp = try DataParallelEngineClient(
                    ranks: allRanks.indices.map { i in
                        i < initial.count
                            ? AsyncEngineClient(rpc: initial[i].client)
                            : AsyncEngineClient(rpc: remoteClients[allRanks[i]]!, liveness: liveness)
                    }, firstRank: allRanks[0], policy: policy)
            } catch {
                processes.stopAll()
                for c in remoteClients.values { c.shutdown() }
                rayDP?.shutdown()
                throw ServeStartupError("\(error)")
            }
            // An expert-parallel rank cannot rejoin its group: the others fail their requests naming it instead.
            let restart = server.restartEngines && !config.parallel.dataParallelLockStep
            dp.announcesWaves = config.parallel.dataParallelLockStep
            dp.onRankDown { index, reason in
                guard !shutdown.isSet else { return }
                let rank = allRanks[index]  // global, for the log
                // A rank of a headless node: it comes back when its node is started again.
                guard index < initial.count else {
                    remote?.rankLost(rank, reason: reason, noneLeft: dp.dead != nil)
                    return
                }
                let how = processes[index].exitDescription(waiting: 2)
                if dp.dead != nil && !restart && remote == nil {
                    logger.critical("engine core rank \(rank) died (\(how)): \(reason); no rank is left; exiting")
                    usleep(300_000)
                    Foundation.exit(1)
                }
                if allRanks.count == 1 {
                    logger.error(
                        "engine core died (\(how)): \(reason); requests in flight failed; new ones get 503 until it is restarted")
                } else {
                    logger.error(
                        "engine core rank \(rank) died (\(how)): \(reason); its unstarted requests go to the other ranks, streaming ones failed; serving on the rest"
                    )
                }
                guard restart else { return }
                // Start the rank again (a crash loop gives up after a few tries) and let it rejoin.
                Thread.detachNewThread {
                    for attempt in 1...EngineProcessTable.maxRestarts {
                        usleep(UInt32(min(8, 1 << (attempt - 1))) * 500_000)
                        if shutdown.isSet { return }
                        do {
                            let p = try EngineCoreProcess.startAll(
                                configs: [configs[index]], executable: PagodaExecutable.path,
                                startupTimeout: 600)[0]
                            processes[index] = p
                            do { try dp.rejoin(rank: index, client: AsyncEngineClient(rpc: p.client)) } catch {
                                p.stop()
                                throw error
                            }
                            logger.notice(
                                "engine core rank \(rank) restarted (pid \(p.pid)) and rejoined (\(p.client.handshakeInfo.numBlocks) KV blocks)"
                            )
                            return
                        } catch {
                            logger.error("engine core rank \(rank) restart \(attempt) failed: \(error)")
                        }
                    }
                    if dp.dead != nil {
                        logger.critical("no rank is left and rank \(rank) does not restart; exiting")
                        Foundation.exit(1)
                    }
                }
            }
            dp.start()
            remote?.serve(dp, liveness: EngineRPCLiveness(timeout: multiNode.heartbeatTimeout))
            engineClient = dp
        }

        starting.ready(engineClient)
        logger.info("the engine is up: serving requests")
        do {
            // A SIGTERM while the engines loaded has drained and stopped the server already: this returns at once.
            try await apiServer.value
        } catch {
            shutdown.set()
            processes.stopAll()
            remote?.shutdown(engineClient)
            rayDP?.shutdown()
            throw ServeStartupError("API server failed: \(error)")
        }
        shutdown.set()
        logger.info("shutting down the engine core\(allRanks.count > 1 ? "s" : "")")
        processes.stopAll()
        remote?.shutdown(engineClient)
        rayDP?.shutdown()
    }
}

/// The server flags of `pagoda serve` (vLLM's names); the engine flags are `EngineArgs`.
struct ServerArgs: ParsableArguments {
    @Option(help: "Address to listen on.")
    var host: String = "0.0.0.0"

    @Option(help: "Port to listen on.")
    var port: Int = 8000

    @Option(
        name: .customLong("served-model-name"), parsing: .upToNextOption,
        help: "Model name(s) clients use; the first is reported. Default: the MODEL argument.")
    var servedModelName: [String] = []

    @Option(
        name: .customLong("api-key"),
        help: "Require 'Authorization: Bearer <key>' on the routes that cost work (/v1/*, /tokenize, /detokenize). Default: $VLLM_API_KEY.")
    var apiKey: String?

    @Flag(
        name: .customLong("api-key-all-routes"), help: "With an API key: also require it on /health, /ping, /metrics, /load and /version.")
    var apiKeyAllRoutes = false

    @Option(
        name: .customLong("max-concurrent-requests"),
        help: "Generation requests this server holds at once; more get 429 with Retry-After (0: no limit).")
    var maxConcurrentRequests: Int = 4096

    @Option(name: .customLong("max-request-body-bytes"), help: "Larger request bodies get 413.")
    var maxRequestBodyBytes: Int = 8 << 20

    @Option(
        name: .customLong("shutdown-timeout"),
        help: "On SIGTERM/SIGINT, seconds to let in-flight requests finish while new ones get 503; 0 aborts them at once (vLLM's default).")
    var shutdownTimeout: Double = 0

    @Flag(name: .customLong("disable-log-requests"), help: "Do not log each request.")
    var disableLogRequests = false

    @Flag(name: .customLong("trust-remote-code"), help: "Accepted for vLLM compatibility; has no effect.")
    var trustRemoteCode = false

    @Flag(name: .customLong("enforce-eager"), help: "Accepted for vLLM compatibility; has no effect.")
    var enforceEager = false

    @Option(name: .customLong("data-parallel-size"), help: "Data-parallel ranks in the whole deployment.")
    var dataParallelSize: Int = 1

    @Option(
        name: .customLong("data-parallel-rank"),
        help:
            "This server's data-parallel rank (0 ..< --data-parallel-size): external load balancing, one rank per server. Without it, --data-parallel-size N runs N engine cores behind this server."
    )
    var dataParallelRank: Int?

    @Option(
        name: .customLong("data-parallel-routing"),
        help:
            "How this server spreads requests over its engine cores: prefix (load, then the engine caching the longest prefix among close loads; default) or load (vLLM's waiting × 4 + running)."
    )
    var dataParallelRouting: DataParallelRouting = .prefix

    @Flag(
        name: .customLong("restart-engines"), inversion: .prefixedNo,
        help:
            "Start a dead local engine core again and let it rejoin (default on; with one engine, requests get 503 until it is back). With --no-restart-engines, a server left with no engine core exits non-zero."
    )
    var restartEngines = true

    @Flag(
        name: .customLong("enable-auto-tool-choice"),
        help: "Let the model decide when to call tools (tool_choice \"auto\"); needs --tool-call-parser.")
    var enableAutoToolChoice = false

    @Option(
        name: .customLong("tool-call-parser"),
        help: "How tool calls look in the model's output: hermes, llama3_json or mistral.")
    var toolCallParser: String?

    @Option(
        name: .customLong("data-parallel-address"),
        help:
            "The head node's address: where it listens for the engine cores of headless nodes, and where they connect. Default: 127.0.0.1.")
    var dataParallelAddress: String?

    @Option(
        name: .customLong("data-parallel-rpc-port"), help: "The head's TCP port for the engine cores of headless nodes. Default: 29550.")
    var dataParallelRPCPort: Int?

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("invalid --port \(port): must be between 0 and 65535") }
        if let k = apiKey, k.isEmpty { throw ValidationError("invalid --api-key: empty") }
        guard maxConcurrentRequests >= 0 else {
            throw ValidationError("invalid --max-concurrent-requests \(maxConcurrentRequests): must be 0 (no limit) or more")
        }
        guard maxRequestBodyBytes >= 1 else {
            throw ValidationError("invalid --max-request-body-bytes \(maxRequestBodyBytes): must be at least 1")
        }
        guard shutdownTimeout >= 0 && shutdownTimeout.isFinite else {
            throw ValidationError("invalid --shutdown-timeout \(shutdownTimeout): must be 0 or more seconds")
        }
        if let p = toolCallParser, ToolCallParserKind(rawValue: p) == nil {
            throw ValidationError(
                "invalid --tool-call-parser '\(p)': must be one of \(ToolCallParserKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if enableAutoToolChoice && toolCallParser == nil {
            throw ValidationError("--enable-auto-tool-choice requires --tool-call-parser")
        }
        if servedModelName.contains(where: \.isEmpty) { throw ValidationError("invalid --served-model-name: empty name") }
    }
}

extension ServerArgs {
    /// The API server's settings from these flags: one place for the single server and the K API-server processes.
    func makeServerConfig(served: [String], modelPath: String, chat: ChatServingConfig, dataParallelRank: Int, dataParallelSize: Int)
        -> ServerConfig
    {
        var c = ServerConfig(servedModelNames: served, modelPath: modelPath)
        c.host = host
        c.port = port
        c.apiKey = resolvedAPIKey(environment: ProcessInfo.processInfo.environment)
        c.apiKeyAllRoutes = apiKeyAllRoutes
        c.maxRequestBodyBytes = maxRequestBodyBytes
        c.maxConcurrentRequests = maxConcurrentRequests
        c.shutdownTimeoutSeconds = shutdownTimeout
        c.disableLogRequests = disableLogRequests
        c.enableAutoToolChoice = enableAutoToolChoice
        c.toolCallParser = toolCallParser.flatMap(ToolCallParserKind.init(rawValue:))
        c.dataParallelRank = dataParallelRank
        c.dataParallelSize = dataParallelSize
        c.chat = chat
        return c
    }

    /// `--api-key`, else vLLM's `VLLM_API_KEY` (never logged).
    func resolvedAPIKey(environment: [String: String]) -> String? {
        EnvironmentSetting.value(flag: apiKey, flagName: "--api-key", variables: ["VLLM_API_KEY"], in: environment)?.value
    }
}

/// `--data-parallel-routing`.
enum DataParallelRouting: String, ExpressibleByArgument, CaseIterable {
    case prefix, load
}

/// The engine-core processes of this server by local rank; a restarted rank replaces its entry.
final class EngineProcessTable: @unchecked Sendable {
    /// Restarts of one rank before its crash loop is given up.
    static let maxRestarts = 5
    private let lock = NSLock()
    private var processes: [EngineCoreProcess]

    init(_ processes: [EngineCoreProcess]) { self.processes = processes }

    subscript(rank: Int) -> EngineCoreProcess {
        get { lock.lock(); defer { lock.unlock() }; return processes[rank] }
        set { lock.lock(); processes[rank] = newValue; lock.unlock() }
    }

    func stopAll() {
        lock.lock(); let all = processes; lock.unlock()
        for p in all { p.stop() }
    }
}
