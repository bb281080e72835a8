import Foundation
import PagodaDistributed

#if canImport(Glibc)
import Glibc
#endif

/// The consumer side of one TCP transfer: reads a request's blocks from the producer's `KVBlockServer`
/// straight into the local blocks, layer by layer. Every wait is bounded: `connectTimeout` to reach the
/// producer, `transferTimeout` for the whole read.
enum KVBlockFetcher {
    /// Fills `localBlockIds` with the producer's `remoteBlockIds` (same count). Returns the bytes read.
    /// Throws with the reason when the producer is unreachable, refuses, stalls or closes early; the
    /// local blocks may then hold part of the data and must not be used.
    static func fetch(
        host: String, port: Int, requestId: String, remoteBlockIds: [Int], localBlockIds: [Int],
        into storage: KVBlockStorage, secret: PeerSecret, connectTimeout: Double, transferTimeout: Double
    ) throws -> Int {
        precondition(remoteBlockIds.count == localBlockIds.count)
        let start = Date()
        let fd = try KVTransferSocket.connect(host: host, port: port, deadline: start + connectTimeout)
        defer { close(fd) }
        do { try PeerAuthentication.connect(fd: fd, secret: secret, timeout: connectTimeout) } catch {
            throw KVTransferSocket.Failure(description: "authentication with the producer failed: \(error)")
        }
        let deadline = start + transferTimeout
        let request = KVBlockReadRequest(
            requestId: requestId, blockIds: remoteBlockIds, numLayers: storage.kvNumLayers,
            blockFloats: storage.kvBlockFloats)
        try KVTransferSocket.sendMessage(fd, request, deadline: deadline)
        let reply = try KVTransferSocket.receiveMessage(fd, KVBlockReadReply.self, deadline: deadline)
        guard reply.ok else {
            throw KVTransferSocket.Failure(description: "the producer refused: \(reply.error ?? "no reason given")")
        }
        // One receive per layer's K (and V) of all blocks into a staging buffer, then scattered to the blocks.
        let bytes = storage.kvBlockFloats * MemoryLayout<Float>.stride
        let chunk = bytes * localBlockIds.count
        let staging = UnsafeMutableRawPointer.allocate(byteCount: max(1, chunk), alignment: 64)
        defer { staging.deallocate() }
        var total = 0
        for layer in 0..<storage.kvNumLayers {
            for value in [false, true] {
                try KVTransferSocket.recv(fd, staging, chunk, deadline: deadline)
                for (k, b) in localBlockIds.enumerated() {
                    memcpy(storage.kvBlockPointer(layer: layer, block: b, value: value), staging + k * bytes, bytes)
                }
                total += chunk
            }
        }
        return total
    }
}
