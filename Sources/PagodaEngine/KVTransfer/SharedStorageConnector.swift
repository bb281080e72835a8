import Foundation
import Logging

/// The scheduler half of the shared-storage connector (after vLLM's `SharedStorageConnector`): every full
/// prompt block a step computes is stored in the directory under its block hash; a new request whose next
/// blocks (after the local prefix-cache hit) are stored there loads them instead of computing them. The
/// directory outlives the server, so a second server started on it serves the first one's prefixes.
/// Loads are synchronous (before the step's forward pass), as in vLLM's.
final class SharedStorageConnectorScheduler: KVConnectorScheduler {
    let directory: String
    let blockSize: Int
    /// The size a complete block file has (checked before a block counts as a hit).
    let fileSize: Int
    private var pending = KVConnectorMetadata()
    /// Leading prompt blocks of each running request already stored (or found stored).
    private var numSavedBlocks: [String: Int] = [:]
    /// A request's block table (the scheduler's KV cache manager).
    var blockTable: (String) -> [Int] = { _ in [] }

    init(directory: String, blockSize: Int, bytesPerBlock: Int) {
        self.directory = directory
        self.blockSize = blockSize
        fileSize = SharedStorageFile.size(blockSize: blockSize, bytesPerBlock: bytesPerBlock)
    }

    private func path(_ hash: BlockHash) -> String { (directory as NSString).appendingPathComponent(SharedStorageFile.name(hash.value)) }

    private func isStored(_ hash: BlockHash) -> Bool {
        ((try? FileManager.default.attributesOfItem(atPath: path(hash)))?[.size] as? Int) == fileSize
    }

    func getNumNewMatchedTokens(_ request: Request, numComputedTokens: Int) -> (numTokens: Int, loadAsync: Bool) {
        request.updateBlockHashes(blockSize: blockSize)
        let maxBlocks = (request.numTokens - 1) / blockSize  // never the whole prompt: the last token gives the logits
        var n = numComputedTokens / blockSize
        let first = n
        while n < min(maxBlocks, request.blockHashes.count) && isStored(request.blockHashes[n]) { n += 1 }
        return ((n - first) * blockSize, false)
    }

    func updateStateAfterAlloc(_ request: Request, blockIds: [Int], numExternalTokens: Int) {
        guard numExternalTokens > 0 else { return }
        let first = request.numComputedTokens / blockSize
        let end = first + numExternalTokens / blockSize
        let hashes = request.blockHashes[first..<end]
        pending.loads.append(
            KVLoadSpec(
                reqId: request.requestId, blockIds: Array(blockIds[first..<end]),
                source: .storage(hashes: hashes.map(\.value), tokenIds: hashes.map(\.tokenIds))))
        numSavedBlocks[request.requestId] = end
    }

    func buildConnectorMeta(_ schedulerOutput: SchedulerOutput, requests: [Request]) -> KVConnectorMetadata {
        for req in requests {
            req.updateBlockHashes(blockSize: blockSize)
            let numFull = min(min(req.numComputedTokens, req.numPromptTokens) / blockSize, req.blockHashes.count)
            let from = numSavedBlocks[req.requestId] ?? 0
            guard numFull > from else { continue }
            let blockIds = blockTable(req.requestId)
            var spec = KVSaveSpec(reqId: req.requestId, blockIds: [], hashes: [], tokenIds: [])
            for i in from..<numFull where !isStored(req.blockHashes[i]) {
                spec.blockIds.append(blockIds[i]); spec.hashes.append(req.blockHashes[i].value)
                spec.tokenIds.append(req.blockHashes[i].tokenIds)
            }
            numSavedBlocks[req.requestId] = numFull
            if !spec.blockIds.isEmpty { pending.saves.append(spec) }
        }
        defer { pending = KVConnectorMetadata() }
        return pending
    }

    func requestFinished(_ request: Request, blockIds: [Int]) -> (delayFree: Bool, params: KVTransferParams?) {
        numSavedBlocks[request.requestId] = nil
        return (false, nil)
    }
}

/// The worker half of the shared-storage connector: reads a step's loads into their blocks before the
/// forward pass and writes its saves after it (one file per block holds every layer, so `saveKVLayer`
/// only marks the layer and `waitForSave` writes the files).
final class SharedStorageConnectorWorker: KVConnectorWorker {
    let directory: String
    private var storage: KVBlockStorage?
    private var pendingSaves: [KVSaveSpec] = []
    private var stats = KVTransferStats()
    private let logger = Logger(label: "pagoda.kv-transfer")

    init(directory: String) { self.directory = directory }

    func registerKVCaches(_ storage: KVBlockStorage) throws { self.storage = storage }

    private func path(_ hash: UInt64) -> String { (directory as NSString).appendingPathComponent(SharedStorageFile.name(hash)) }

    func startLoadKV(_ meta: KVConnectorMetadata) throws {
        guard let storage else { return }
        pendingSaves = meta.saves
        for load in meta.loads {
            guard case .storage(let hashes, let tokenIds) = load.source else { continue }
            let start = Date()
            for (k, b) in load.blockIds.enumerated() {
                try SharedStorageFile.read(path(hashes[k]), block: b, tokenIds: tokenIds[k], storage: storage)
            }
            stats.transfers += 1
            stats.bytes += load.blockIds.count * 2 * storage.kvNumLayers * storage.kvBlockFloats * 4
            stats.seconds += Date().timeIntervalSince(start)
        }
    }

    func waitForLayerLoad(_ layer: Int) {}
    func saveKVLayer(_ layer: Int, _ meta: KVConnectorMetadata) throws {}

    func waitForSave() throws {
        guard let storage else { return }
        defer { pendingSaves.removeAll() }
        for save in pendingSaves {
            for (k, b) in save.blockIds.enumerated() {
                do {
                    try SharedStorageFile.write(path(save.hashes[k]), block: b, tokenIds: save.tokenIds[k], storage: storage)
                    stats.savedBlocks += 1
                } catch {
                    // A full disk must not fail the step: the block is simply not stored.
                    logger.warning("\(error)")
                }
            }
        }
    }

    func getFinished(_ finishedReqIds: [String]) -> KVConnectorOutput {
        var out = KVConnectorOutput()
        out.stats = stats
        stats = KVTransferStats()
        return out
    }

    func shutdown() {}
}
