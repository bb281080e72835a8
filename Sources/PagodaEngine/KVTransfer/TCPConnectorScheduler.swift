import Foundation
import Logging

/// The scheduler half of the TCP connector. Producer: a finished request that asked for
/// `do_remote_decode` keeps its blocks for the decode server, and its response says where to read them.
/// Consumer: a request whose `kv_transfer_params` name a producer loads its prompt's KV from there,
/// asynchronously (the request waits in `waitingForRemoteKVs`), unless it already failed once.
final class TCPConnectorScheduler: KVConnectorScheduler {
    let config: KVTransferConfig
    let engineId: String
    /// The ports the producer's KV servers listen on, one per tensor-parallel rank (announced in
    /// `remote_port` and, with several ranks, `remote_ports`).
    let serverPorts: [Int]
    let blockSize: Int
    /// Bytes of one block over all layers (K and V): caps the blocks held at `kv_buffer_size`.
    let bytesPerBlock: Int
    private var pending = KVConnectorMetadata()
    private var numBlocksHeld = 0
    private var heldBlocks: [String: Int] = [:]
    private let logger = Logger(label: "pagoda.kv-transfer")

    init(config: KVTransferConfig, engineId: String, serverPorts: [Int], blockSize: Int, bytesPerBlock: Int) {
        self.config = config; self.engineId = engineId; self.serverPorts = serverPorts
        self.blockSize = blockSize; self.bytesPerBlock = bytesPerBlock
    }

    func getNumNewMatchedTokens(_ request: Request, numComputedTokens: Int) -> (numTokens: Int, loadAsync: Bool) {
        guard config.role.isConsumer, !request.kvLoadFailed, let params = request.kvTransferParams,
            let source = params.remoteSource
        else { return (0, false) }
        let expectedBlocks = (request.numPromptTokens + blockSize - 1) / blockSize
        if let n = params.remoteNumTokens, n != request.numPromptTokens {
            request.kvLoadRefusal = "the producer computed \(n) prompt tokens, this server has \(request.numPromptTokens)"
            return (0, false)
        }
        if source.blockIds.count != expectedBlocks {
            request.kvLoadRefusal = "the producer offers \(source.blockIds.count) blocks for a prompt of \(expectedBlocks) blocks"
            return (0, false)
        }
        return (max(0, request.numPromptTokens - numComputedTokens), true)
    }

    func updateStateAfterAlloc(_ request: Request, blockIds: [Int], numExternalTokens: Int) {
        guard numExternalTokens > 0, let source = request.kvTransferParams?.remoteSource else { return }
        // Blocks from the first one the local prefix cache did not cover to the end of the prompt.
        let first = request.numComputedTokens / blockSize
        let end = (request.numPromptTokens + blockSize - 1) / blockSize
        pending.loads.append(
            KVLoadSpec(
                reqId: request.requestId, blockIds: Array(blockIds[first..<end]),
                source: .remote(
                    host: source.host, ports: source.ports, requestId: source.requestId,
                    blockIds: Array(source.blockIds[first..<end]))))
    }

    func buildConnectorMeta(_ schedulerOutput: SchedulerOutput, requests: [Request]) -> KVConnectorMetadata {
        defer { pending = KVConnectorMetadata() }
        return pending
    }

    func requestFinished(_ request: Request, blockIds: [Int]) -> (delayFree: Bool, params: KVTransferParams?) {
        guard config.role.isProducer, request.kvTransferParams?.doRemoteDecode == true,
            request.status == .finishedLengthCapped || request.status == .finishedStopped
        else { return (false, nil) }
        let n = (request.numPromptTokens + blockSize - 1) / blockSize
        guard n <= blockIds.count else { return (false, nil) }
        if (numBlocksHeld + n) * bytesPerBlock > config.bufferSize {
            logger.warning(
                "request \(request.requestId): holding its KV would exceed kv_buffer_size (\(config.bufferSize) bytes); freed at once, the decode server will recompute it"
            )
            return (false, nil)
        }
        let blocks = Array(blockIds.prefix(n))
        numBlocksHeld += n
        heldBlocks[request.requestId] = n
        pending.sends.append(KVSendSpec(reqId: request.requestId, blockIds: blocks, timeoutSeconds: config.transferTimeoutSeconds))
        return (
            true,
            KVTransferParams(
                doRemoteDecode: false, doRemotePrefill: true, remoteEngineId: engineId, remoteHost: config.ip,
                remotePort: serverPorts.first,
                remoteBlockIds: blocks, remoteRequestId: request.requestId, remoteNumTokens: request.numPromptTokens,
                remotePorts: serverPorts.count > 1 ? serverPorts : nil)
        )
    }

    func heldBlocksFreed(_ requestId: String) {
        if let n = heldBlocks.removeValue(forKey: requestId) { numBlocksHeld -= n }
    }
}
