import Foundation
import Logging
import PagodaDistributed

/// The worker half of the TCP connector, one per tensor-parallel rank. As producer it hands finished
/// requests' blocks to its `KVBlockServer`; as consumer it starts one fetch thread per load, which reads
/// this rank's KV heads from the producer's ranks (`KVBlockFetcher.plan`) into blocks no step touches
/// until the load is reported finished. Loads and reads happen outside the forward pass, so
/// `waitForLayerLoad` and `saveKVLayer` have nothing to wait for.
final class TCPConnectorWorker: KVConnectorWorker, @unchecked Sendable {
    let config: KVTransferConfig
    let server: KVBlockServer?
    private var storage: KVBlockStorage?
    private let lock = NSLock()
    // Guarded by `lock`:
    private var finishedRecving: [String] = []
    private var failedRecving: [String: String] = [:]
    private var stats = KVTransferStats()
    private let logger = Logger(label: "pagoda.kv-transfer")

    /// Proved to the producers this engine reads from.
    private let secret: PeerSecret
    /// This worker's tensor-parallel rank and the engine's tensor-parallel size.
    let tpRank: Int
    let tpSize: Int

    init(config: KVTransferConfig, server: KVBlockServer?, secret: PeerSecret, tpRank: Int = 0, tpSize: Int = 1) {
        self.config = config
        self.server = server
        self.secret = secret
        self.tpRank = tpRank
        self.tpSize = tpSize
    }

    func registerKVCaches(_ storage: KVBlockStorage) throws {
        self.storage = storage
        storage.adviseHugePages()  // before the first step touches the cache: same-host copies pin 2 MiB pages
        server?.start(storage: storage)
    }

    func startLoadKV(_ meta: KVConnectorMetadata) throws {
        for s in meta.sends { server?.hold(s.reqId, blockIds: s.blockIds, timeoutSeconds: s.timeoutSeconds) }
        for load in meta.loads {
            guard case .remote(let host, let ports, let remoteId, let remoteBlocks) = load.source, let storage else { continue }
            let (connect, transfer) = (config.connectTimeoutSeconds, config.transferTimeoutSeconds)
            let where_ = ports.count == 1 ? "\(host):\(ports[0])" : "\(host) ports \(ports)"
            let parts: [KVBlockFetcher.Part]
            do { parts = try KVBlockFetcher.plan(storage: storage, producerPorts: ports, consumerTP: tpSize, consumerRank: tpRank) } catch {
                lock.lock(); failedRecving[load.reqId] = "its KV at \(where_) cannot be read here: \(error)"; lock.unlock()
                continue
            }
            let t = Thread { [self] in
                let start = Date()
                let result = Result {
                    try KVBlockFetcher.fetch(
                        host: host, parts: parts, requestId: remoteId, remoteBlockIds: remoteBlocks,
                        localBlockIds: load.blockIds, into: storage, secret: secret, connectTimeout: connect,
                        transferTimeout: transfer, sameHostCopy: config.sameHostCopy,
                        connectionsPerRank: config.connectionsPerRank ?? KVBlockFetcher.defaultConnectionsPerRank(parts))
                }
                lock.lock()
                switch result {
                case .success(let bytes):
                    finishedRecving.append(load.reqId)
                    stats.transfers += 1
                    stats.bytes += bytes
                    stats.seconds += Date().timeIntervalSince(start)
                case .failure(let error):
                    failedRecving[load.reqId] = "reading its KV from \(where_) failed: \(error)"
                }
                lock.unlock()
            }
            t.name = "pagoda-kv-fetch"
            t.start()
        }
    }

    func waitForLayerLoad(_ layer: Int) {}
    func saveKVLayer(_ layer: Int, _ meta: KVConnectorMetadata) throws {}
    func waitForSave() throws {}

    func getFinished(_ finishedReqIds: [String]) -> KVConnectorOutput {
        var out = KVConnectorOutput()
        if let server {
            let (sent, sendStats, held) = server.takeFinished()
            out.finishedSending = sent
            out.stats.add(sendStats)
            out.stats.blocksHeldForRemote = held
        }
        lock.lock()
        out.finishedRecving = finishedRecving
        out.failedRecving = failedRecving
        out.stats.add(stats)
        finishedRecving.removeAll(); failedRecving.removeAll(); stats = KVTransferStats()
        lock.unlock()
        return out
    }

    func shutdown() { server?.shutdown() }
}
