import ArgumentParser
import Foundation
import Logging
import PagodaEngine
import PagodaServer

/// `pagoda engine-core` (hidden): one engine core process, started by `pagoda serve`. It connects
/// to the front-end's engine RPC address, loads the model, sends its handshake, and serves
/// requests until the front-end says shutdown or goes away.
struct EngineCoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine-core", abstract: "Run one engine core process (started by serve; hidden).", shouldDisplay: false)

    @Option(name: .customLong("engine-config-json"), help: "The EngineConfig, as JSON.")
    var engineConfigJSON: String

    @Option(name: .customLong("rpc-address"), help: "The front-end's engine RPC address (unix:/path or tcp://host:port).")
    var rpcAddress: String

    func run() throws {
        setvbuf(stdout, nil, _IOLBF, 0)
        // Ctrl-C reaches the whole process group: the front-end shuts the engine down in order, and
        // the engine exits by itself when the front-end's connection closes.
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let address = try EngineRPCAddress(parsing: rpcAddress)
        let config: EngineConfig
        do { config = try JSONDecoder().decode(EngineConfig.self, from: Data(engineConfigJSON.utf8)) } catch {
            throw ValidationError("invalid --engine-config-json: \(error)")
        }
        let dp = config.parallel.dataParallelSize > 1 ? (config.parallel.dataParallelRank, config.parallel.dataParallelSize) : nil
        ServeLogging.bootstrap(dataParallel: dp, process: "engine-core")
        let logger = Logger(label: "pagoda.engine-core")

        let connection = try EngineRPCConnection.connect(to: address, timeout: 30)
        let core: EngineCore
        do {
            core = try EngineCore(config: config)
        } catch {
            try? connection.send(.failure("\(error)"))
            logger.error("engine core failed to start: \(error)")
            throw ExitCode(1)
        }
        let handshake = EngineHandshake(
            model: config.model.path, numBlocks: core.numBlocks, blockSize: config.cache.blockSize,
            maxModelLen: core.maxModelLen, vocabSize: core.modelInfo.vocabSize, eosTokenIds: core.modelInfo.eosTokenIds,
            dataParallelRank: config.parallel.dataParallelRank, dataParallelSize: config.parallel.dataParallelSize,
            pid: Int(getpid()))
        let exit = EngineCoreRPCServer(connection: connection, handshake: handshake, backend: EngineCoreThread(core: core, publishKVEvents: config.cache.enablePrefixCaching)).run()
        switch exit {
        case .shutdownRequested:
            logger.info("engine core shut down")
        case .frontEndGone(let why):
            logger.error("engine core exiting: \(why)")
            throw ExitCode(1)
        }
    }
}
