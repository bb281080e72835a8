import Foundation
import Logging
import PagodaDistributed

/// The worker half of the TCP connector. As producer it hands finished requests' blocks to its
/// `KVBlockServer`; as consumer it starts one fetch thread per load, which writes into blocks no step
/// touches until the load is reported finished. Loads and reads happen outside the forward pass, so
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

    init(config: KVTransferConfig, server: KVBlockServer?, secret: PeerSecret) {
        self.config = config
        self.server = server
        self.secret = secret
    }

    func registerKVCaches(_ storage: KVBlockStorage) throws {
        self.storage = storage
        server?.start(storage: storage)
    }

    func startLoadKV(_ meta: KVConnectorMetadata) throws {
        for s in meta.sends { server?.hold(s.reqId, blockIds: s.blockIds, timeoutSeconds: s.timeoutSeconds) }
        for load in meta.loads {
            guard case .remote(let host, let port, let remoteId, let remoteBlocks) = load.source, let storage else { continue }
            let (connect, transfer) = (config.connectTimeoutSeconds, config.transferTimeoutSeconds)
            let t = Thread { [self] in
                let start = Date()
                let result = Result {
                    try KVBlockFetcher.fetch(
                        host: host, port: port, requestId: remoteId, remoteBlockIds: remoteBlocks,
                        localBlockIds: load.blockIds, into: storage, secret: secret, connectTimeout: connect,
                        transferTimeout: transfer)
                }
                lock.lock()
                switch result {
                case .success(let bytes):
                    finishedRecving.append(load.reqId)
                    stats.transfers += 1
                    stats.bytes += bytes
                    stats.seconds += Date().timeIntervalSince(start)
                case .failure(let error):
                    failedRecving[load.reqId] = "reading its KV from \(host):\(port) failed: \(error)"
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
