import Foundation
import Logging
import PagodaDistributed

/// Builds the connector `--kv-transfer-config` names and wires its halves into the engine: the scheduler
/// half into the scheduler, the worker half into the model runner with the paged cache it reads and
/// writes (vLLM's `KVConnectorFactory`).
enum KVConnectorFactory {
    /// Returns the worker half when it runs in this process (the engine shuts it down; nil: it runs in
    /// the executor's worker processes). Throws when the executor cannot host a connector.
    static func install(
        _ c: KVTransferConfig, config: EngineConfig, executor: Executor, scheduler: Scheduler,
        bytesPerBlock: Int
    ) throws -> KVConnectorWorker? {
        let logger = Logger(label: "pagoda.kv-transfer")
        if c.isAlias {
            logger.info(
                "kv_connector \(c.connectorName) is served by Pagoda's \(KVTransferConfig.Connector.tcp.rawValue) (KV blocks over TCP)")
        }
        let blockSize = config.cache.blockSize
        if executor is MultiprocExecutor {
            // Tensor parallelism: each worker process runs its rank's worker half (`makeTCPWorker`); the
            // executor merges their reports. Only the scheduler half lives here.
            guard c.connector == .tcp else {
                throw EngineConfigError.invalid(
                    "--kv-transfer-config", "\(c.connectorName) runs with --tensor-parallel-size 1 only (TCPConnector supports more)")
            }
            let engineId = c.engineId ?? UUID().uuidString.lowercased()
            let ports = executor.modelInfo.kvServerPorts
            if c.role.isProducer {
                logger.info("KV transfer: \(c.role.rawValue) \(engineId) serves KV blocks on \(c.ip) ports \(ports) (one per TP rank)")
            }
            scheduler.setConnector(
                TCPConnectorScheduler(
                    config: c, engineId: engineId, serverPorts: ports, blockSize: blockSize, bytesPerBlock: bytesPerBlock))
            return nil
        }
        guard let uni = executor as? UniProcExecutor, let storage = uni.runner.model as? KVBlockStorage else {
            throw EngineConfigError.invalid(
                "--kv-transfer-config", "the KV connector needs a model with a paged KV cache")
        }
        let worker: KVConnectorWorker
        switch c.connector {
        case .tcp:
            guard let secret = config.internalSecret else {
                throw EngineConfigError.invalid(
                    "--kv-transfer-config", "KV transfer over TCP needs the deployment's internal secret (EngineConfig.internalSecret)")
            }
            let engineId = c.engineId ?? UUID().uuidString.lowercased()
            var server: KVBlockServer? = nil
            if c.role.isProducer {
                server = try KVBlockServer(host: c.ip, port: c.port, ioTimeoutSeconds: c.transferTimeoutSeconds, secret: secret)
                logger.info("KV transfer: \(c.role.rawValue) \(engineId) serves KV blocks on \(c.ip):\(server!.port)")
            } else {
                logger.info("KV transfer: \(c.role.rawValue) \(engineId) reads KV blocks from the producers its requests name")
            }
            scheduler.setConnector(
                TCPConnectorScheduler(
                    config: c, engineId: engineId, serverPorts: [server?.port ?? c.port],
                    blockSize: blockSize, bytesPerBlock: bytesPerBlock))
            worker = TCPConnectorWorker(config: c, server: server, secret: secret)
        case .sharedStorage:
            let dir = try sharedStorageDirectory(c.sharedStoragePath!, config: config, storage: storage)
            let s = SharedStorageConnectorScheduler(directory: dir, blockSize: blockSize, bytesPerBlock: bytesPerBlock)
            s.blockTable = { [kv = scheduler.kvCacheManager] in kv.blockIds(of: $0) }
            scheduler.setConnector(s)
            worker = SharedStorageConnectorWorker(directory: dir)
            logger.info("KV transfer: shared storage in \(dir)")
        }
        try worker.registerKVCaches(storage)
        uni.runner.kvConnector = worker
        return worker
    }

    /// The TCP connector's worker half of tensor-parallel rank `tpRank` in a worker process; a producer's
    /// rank listens on `kv_port + tpRank` (any free port with `kv_port` 0).
    static func makeTCPWorker(_ c: KVTransferConfig, tpRank: Int, tpSize: Int, secret: PeerSecret) throws -> TCPConnectorWorker {
        var server: KVBlockServer? = nil
        if c.role.isProducer {
            server = try KVBlockServer(
                host: c.ip, port: c.port == 0 ? 0 : c.port + tpRank, ioTimeoutSeconds: c.transferTimeoutSeconds, secret: secret)
        }
        return TCPConnectorWorker(config: c, server: server, secret: secret, tpRank: tpRank, tpSize: tpSize)
    }

    /// `<path>/<model key>`: blocks of different models, dtypes or block sizes never share a directory
    /// (their token hashes would collide). Created when missing.
    static func sharedStorageDirectory(_ path: String, config: EngineConfig, storage: KVBlockStorage) throws -> String {
        let model = (config.model.path as NSString).standardizingPath
        let key =
            "\(model)|\(config.model.dtype.rawValue)|\(config.model.quantization?.rawValue ?? "-")|\(config.cache.blockSize)"
            + "|\(storage.kvNumLayers)|\(storage.kvBlockFloats)"
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in key.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        let dir = (path as NSString).appendingPathComponent(String(format: "%016llx", h))
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw EngineConfigError.invalid(
                "--kv-transfer-config",
                "kv_connector_extra_config.shared_storage_path: cannot create \(dir): \(error)")
        }
        return dir
    }
}
