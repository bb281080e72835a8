import ArgumentParser
import Foundation
import Logging
import PagodaEngine
import PagodaServer

/// `pagoda serve [MODEL]`: the OpenAI-compatible API server (vLLM's `vllm serve`). The engine core
/// runs in its own process (`pagoda engine-core`), joined by the engine RPC; if it dies, the
/// server fails what is in flight and exits non-zero.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Serve a model behind an OpenAI-compatible HTTP API.")

    @Argument(help: "Model folder (config.json, *.safetensors, tokenizer.json). Default: the small model in models/tiny-qwen3.")
    var model: String?

    @OptionGroup(title: "Server options") var server: ServerArgs
    @OptionGroup(title: "Engine options") var engine: EngineArgs
    @OptionGroup(title: "Front-end and data-parallel load balancing options") var frontEnd: FrontEndArgs

    func validate() throws {
        try server.validate()
        try frontEnd.validate(with: server)
    }

    func run() async throws {
        setvbuf(stdout, nil, _IOLBF, 0)
        let modelPath = try ServedModelFolder.resolve(model)
        let config = try engine.makeConfig(model: modelPath)
        // `--data-parallel-size N` alone: N engine cores behind this server (internal load balancing); with
        // `--data-parallel-rank r` this server is one rank of N (external), with `--data-parallel-hybrid-lb`
        // it runs this node's ranks (hybrid). Ranks are global everywhere (logs, /load, /metrics).
        var modeNotes: [String] = []
        let layout = try frontEnd.layout(server: server, warn: { modeNotes.append($0) })
        let external = layout.mode == .external
        let dpSize = layout.size
        let localRanks = layout.localRanks
        let served = server.servedModelName.isEmpty ? [model ?? "tiny-qwen3"] : server.servedModelName
        if let index = frontEnd.apiServerIndex {
            let addresses = try frontEnd.engineRPCAddresses.map { try EngineRPCAddress(parsing: $0) }
            guard addresses.count == localRanks.count else {
                throw ValidationError("--engine-rpc-address: \(addresses.count) given, \(localRanks.count) ranks run here")
            }
            try await APIServerProcess(index: index, count: frontEnd.apiServerCount, layout: layout, addresses: addresses,
                                       modelPath: modelPath, served: served, server: server).run()
            return
        }
        ServeLogging.bootstrap(dataParallel: external && dpSize > 1 ? (localRanks[0], dpSize) : nil)
        let logger = Logger(label: "pagoda.serve")
        for note in modeNotes { logger.warning("\(note)") }

        if server.trustRemoteCode { logger.notice("--trust-remote-code has no effect: Pagoda runs no model code from the model folder") }
        if server.enforceEager { logger.notice("--enforce-eager has no effect: Pagoda has no graph capture on CPUs") }
        if dpSize > 1 {
            logger.info("\(layout.summary)\(localRanks.count > 1 ? ", \(server.dataParallelRouting.rawValue) routing" : "")")
        }
        try ListenPortCheck.ensureFree(host: server.host, port: server.port)
        let configs = layout.engineConfigs(base: config)
        if frontEnd.apiServerCount > 1 {
            try await APIServerSupervisor(
                configs: configs, apiServerCount: frontEnd.apiServerCount, childArguments: Array(CommandLine.arguments.dropFirst()),
                restartEngines: server.restartEngines, logger: logger
            ).run()
            return
        }

        // The front-end's own half: the tokenizer and chat template.
        let tokenizer: ServingTokenizer
        do { tokenizer = try TokenizerAdapter(directory: modelPath) } catch {
            throw ServeStartupError("cannot load the tokenizer of \(modelPath): \(error)")
        }

        // The engine core processes: each loads the model, sizes its KV cache, connects back.
        let started = Date()
        let progress = TerminalProgress(message: "Loading \(modelPath) in \(localRanks.count == 1 ? "the engine core" : "\(localRanks.count) engine cores")")
        progress.start()
        let initial: [EngineCoreProcess]
        do {
            initial = try EngineCoreProcess.startAll(configs: configs, executable: PagodaExecutable.path, startupTimeout: 600)
        } catch {
            progress.stop()
            throw ServeStartupError("engine core failed to start: \(error)")
        }
        progress.stop()
        let processes = EngineProcessTable(initial)
        for p in initial {
            let h = p.client.handshakeInfo
            let rank = dpSize > 1 ? "engine core rank \(h.dataParallelRank)" : "engine core"
            logger.info("\(rank) ready (pid \(h.pid)) in \(String(format: "%.1f", Date().timeIntervalSince(started))) s: \(h.numBlocks) KV blocks of \(h.blockSize) tokens, max model len \(h.maxModelLen)")
        }

        let shutdown = ServerShutdownFlag()
        let engineClient: EngineClient
        if initial.count == 1 {
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
                dp = try DataParallelEngineClient(ranks: initial.map { AsyncEngineClient(rpc: $0.client) }, firstRank: localRanks[0], policy: policy)
            } catch {
                processes.stopAll()
                throw ServeStartupError("\(error)")
            }
            let restart = server.restartEngines
            dp.onRankDown { index, reason in
                guard !shutdown.isSet else { return }
                let rank = localRanks[index]  // global, for the log
                let how = processes[index].exitDescription(waiting: 2)
                if dp.dead != nil && !restart {
                    logger.critical("engine core rank \(rank) died (\(how)): \(reason); no rank is left; exiting")
                    usleep(300_000)
                    Foundation.exit(1)
                }
                logger.error("engine core rank \(rank) died (\(how)): \(reason); its unstarted requests go to the other ranks, streaming ones failed; serving on the rest")
                guard restart else { return }
                // Start the rank again (a crash loop gives up after a few tries) and let it rejoin.
                Thread.detachNewThread {
                    for attempt in 1...EngineProcessTable.maxRestarts {
                        usleep(UInt32(min(8, 1 << (attempt - 1))) * 500_000)
                        if shutdown.isSet { return }
                        do {
                            let p = try EngineCoreProcess.startAll(configs: [configs[index]], executable: PagodaExecutable.path,
                                                                   startupTimeout: 600)[0]
                            processes[index] = p
                            do { try dp.rejoin(rank: index, client: AsyncEngineClient(rpc: p.client)) } catch {
                                p.stop()
                                throw error
                            }
                            logger.notice("engine core rank \(rank) restarted (pid \(p.pid)) and rejoined (\(p.client.handshakeInfo.numBlocks) KV blocks)")
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
            engineClient = dp
        }

        var serverConfig = ServerConfig(servedModelNames: served, modelPath: modelPath)
        serverConfig.host = server.host
        serverConfig.port = server.port
        serverConfig.apiKey = server.apiKey
        serverConfig.disableLogRequests = server.disableLogRequests
        serverConfig.dataParallelRank = localRanks[0]
        serverConfig.dataParallelSize = dpSize
        let metrics = ServerMetrics(modelName: served[0], dataParallelRank: localRanks[0], engineRanks: localRanks)
        let serving = OpenAIServing(config: serverConfig, tokenizer: tokenizer, engine: engineClient, metrics: metrics,
                                    logger: logger)

        let host = server.host
        do {
            try await APIServer(serving: serving, logger: logger).run { port in
                logger.info("Pagoda API server on http://\(host):\(port) serving \(served.joined(separator: ", "))")
            }
        } catch {
            shutdown.set()
            processes.stopAll()
            throw ServeStartupError("API server failed: \(error)")
        }
        shutdown.set()
        logger.info("shutting down the engine core\(initial.count > 1 ? "s" : "")")
        processes.stopAll()
    }
}

/// The server flags of `pagoda serve` (vLLM's names); the engine flags are `EngineArgs`.
struct ServerArgs: ParsableArguments {
    @Option(help: "Address to listen on.")
    var host: String = "0.0.0.0"

    @Option(help: "Port to listen on.")
    var port: Int = 8000

    @Option(name: .customLong("served-model-name"), parsing: .upToNextOption,
            help: "Model name(s) clients use; the first is reported. Default: the MODEL argument.")
    var servedModelName: [String] = []

    @Option(name: .customLong("api-key"), help: "Require 'Authorization: Bearer <key>' on /v1 routes.")
    var apiKey: String?

    @Flag(name: .customLong("disable-log-requests"), help: "Do not log each request.")
    var disableLogRequests = false

    @Flag(name: .customLong("trust-remote-code"), help: "Accepted for vLLM compatibility; has no effect.")
    var trustRemoteCode = false

    @Flag(name: .customLong("enforce-eager"), help: "Accepted for vLLM compatibility; has no effect.")
    var enforceEager = false

    @Option(name: .customLong("data-parallel-size"), help: "Data-parallel ranks in the whole deployment.")
    var dataParallelSize: Int = 1

    @Option(name: .customLong("data-parallel-rank"),
            help: "This server's data-parallel rank (0 ..< --data-parallel-size): external load balancing, one rank per server. Without it, --data-parallel-size N runs N engine cores behind this server.")
    var dataParallelRank: Int?

    @Option(name: .customLong("data-parallel-routing"),
            help: "How this server spreads requests over its engine cores: prefix (load, then the engine caching the longest prefix among close loads; default) or load (vLLM's waiting × 4 + running).")
    var dataParallelRouting: DataParallelRouting = .prefix

    @Flag(name: .customLong("restart-engines"), inversion: .prefixedNo,
          help: "With --data-parallel-size N: start a dead engine core again and let it rejoin (default on).")
    var restartEngines = true

    @Option(name: .customLong("data-parallel-address"), help: "Address of data-parallel rank 0 (for the coordinator; accepted, not used yet).")
    var dataParallelAddress: String?

    @Option(name: .customLong("data-parallel-rpc-port"), help: "RPC port of data-parallel rank 0 (for the coordinator; accepted, not used yet).")
    var dataParallelRPCPort: Int?

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("invalid --port \(port): must be between 0 and 65535") }
        guard dataParallelSize >= 1 else { throw ValidationError("invalid --data-parallel-size \(dataParallelSize): must be at least 1") }
        if let dataParallelRank, !(0..<dataParallelSize).contains(dataParallelRank) {
            throw ValidationError("invalid --data-parallel-rank \(dataParallelRank): must be in 0..<\(dataParallelSize) (--data-parallel-size)")
        }
        if let k = apiKey, k.isEmpty { throw ValidationError("invalid --api-key: empty") }
        if servedModelName.contains(where: \.isEmpty) { throw ValidationError("invalid --served-model-name: empty name") }
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
