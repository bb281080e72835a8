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

    func validate() throws {
        try server.validate()
    }

    func run() async throws {
        setvbuf(stdout, nil, _IOLBF, 0)
        let modelPath = try ServedModelFolder.resolve(model)
        var config = try engine.makeConfig(model: modelPath)
        config.parallel.dataParallelSize = server.dataParallelSize
        config.parallel.dataParallelRank = server.dataParallelRank
        let served = server.servedModelName.isEmpty ? [model ?? "tiny-qwen3"] : server.servedModelName
        ServeLogging.bootstrap(dataParallel: server.dataParallelSize > 1 ? (server.dataParallelRank, server.dataParallelSize) : nil)
        let logger = Logger(label: "pagoda.serve")

        if server.trustRemoteCode { logger.notice("--trust-remote-code has no effect: Pagoda runs no model code from the model folder") }
        if server.enforceEager { logger.notice("--enforce-eager has no effect: Pagoda has no graph capture on CPUs") }
        if server.dataParallelSize > 1 {
            logger.info("data parallel rank \(server.dataParallelRank) of \(server.dataParallelSize) (external load balancing: this server is one rank)")
        }
        try ListenPortCheck.ensureFree(host: server.host, port: server.port)

        // The front-end's own half: the tokenizer and chat template.
        let tokenizer: ServingTokenizer
        do { tokenizer = try TokenizerAdapter(directory: modelPath) } catch {
            throw ServeStartupError("cannot load the tokenizer of \(modelPath): \(error)")
        }

        // The engine core process: loads the model, sizes the KV cache, connects back.
        let started = Date()
        let progress = TerminalProgress(message: "Loading \(modelPath) in the engine core")
        progress.start()
        let engineProcess: EngineCoreProcess
        do {
            let configJSON = String(decoding: try JSONEncoder().encode(config), as: UTF8.self)
            let socket = NSTemporaryDirectory() + "pagoda-engine-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
            engineProcess = try EngineCoreProcess(
                executable: PagodaExecutable.path, arguments: ["engine-core", "--engine-config-json", configJSON],
                address: .unix(path: socket), startupTimeout: 600)
        } catch {
            progress.stop()
            throw ServeStartupError("engine core failed to start: \(error)")
        }
        progress.stop()
        let h = engineProcess.client.handshakeInfo
        logger.info("engine core ready (pid \(h.pid)) in \(String(format: "%.1f", Date().timeIntervalSince(started))) s: \(h.numBlocks) KV blocks of \(h.blockSize) tokens, max model len \(h.maxModelLen)")

        let engineClient = AsyncEngineClient(rpc: engineProcess.client)
        var serverConfig = ServerConfig(servedModelNames: served, modelPath: modelPath)
        serverConfig.host = server.host
        serverConfig.port = server.port
        serverConfig.apiKey = server.apiKey
        serverConfig.disableLogRequests = server.disableLogRequests
        serverConfig.dataParallelRank = server.dataParallelRank
        serverConfig.dataParallelSize = server.dataParallelSize
        let metrics = ServerMetrics(modelName: served[0], dataParallelRank: server.dataParallelRank)
        let serving = OpenAIServing(config: serverConfig, tokenizer: tokenizer, engine: engineClient, metrics: metrics,
                                    logger: logger)

        let shutdown = ServerShutdownFlag()
        engineClient.onDeath { reason in
            guard !shutdown.isSet else { return }
            let how = engineProcess.exitDescription(waiting: 2)
            logger.critical("engine core died (\(how)): \(reason); requests in flight failed; exiting")
            usleep(300_000)  // let the error responses of in-flight requests go out
            Foundation.exit(1)
        }
        engineClient.start()

        let host = server.host
        do {
            try await APIServer(serving: serving, logger: logger).run { port in
                logger.info("Pagoda API server on http://\(host):\(port) serving \(served.joined(separator: ", "))")
            }
        } catch {
            shutdown.set()
            engineProcess.stop()
            throw ServeStartupError("API server failed: \(error)")
        }
        shutdown.set()
        logger.info("shutting down the engine core")
        engineProcess.stop()
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

    @Option(name: .customLong("data-parallel-size"), help: "Data-parallel ranks in the deployment (external load balancing).")
    var dataParallelSize: Int = 1

    @Option(name: .customLong("data-parallel-rank"), help: "This server's data-parallel rank (0 ..< --data-parallel-size).")
    var dataParallelRank: Int = 0

    @Option(name: .customLong("data-parallel-address"), help: "Address of data-parallel rank 0 (for the coordinator; accepted, not used yet).")
    var dataParallelAddress: String?

    @Option(name: .customLong("data-parallel-rpc-port"), help: "RPC port of data-parallel rank 0 (for the coordinator; accepted, not used yet).")
    var dataParallelRPCPort: Int?

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("invalid --port \(port): must be between 0 and 65535") }
        guard dataParallelSize >= 1 else { throw ValidationError("invalid --data-parallel-size \(dataParallelSize): must be at least 1") }
        guard (0..<dataParallelSize).contains(dataParallelRank) else {
            throw ValidationError("invalid --data-parallel-rank \(dataParallelRank): must be in 0..<\(dataParallelSize) (--data-parallel-size)")
        }
        if let k = apiKey, k.isEmpty { throw ValidationError("invalid --api-key: empty") }
        if servedModelName.contains(where: \.isEmpty) { throw ValidationError("invalid --served-model-name: empty name") }
    }
}
