import Foundation
import PagodaDistributed

/// Bytes an authenticated KV-transfer peer sent, fed through the code that reads them on the other side,
/// against a small in-memory cache: the producer's handling of a read (`KVBlockServer.serveRead`) and the
/// consumer's handling of the answer (`KVBlockFetcher.readPart`). The entry of the KV fuzz targets
/// (PagodaFuzzing), which hand over a socket whose peer sent the bytes, as over TCP, and closed its side.
public enum KVWirePeerInput {
    /// The request id and blocks the producer holds for every input, and the read a consumer does.
    public static let requestId = "fuzz-req"
    public static let blockIds = [1, 2]

    /// A producer's cache (2 layers, 4 blocks of 2 tokens, 2 KV heads of 4 floats) and KV server, made once.
    private static let producer: KVBlockServer? = {
        let arena = KVBlockArena(numLayers: 2, numBlocks: 4, blockSize: 2, numKVHeads: 2, headDim: 4)
        guard
            let server = try? KVBlockServer(
                host: "127.0.0.1", port: 0, ioTimeoutSeconds: 1, secret: PeerSecret.random(), holdGraceSeconds: 0)
        else { return nil }
        server.attach(storage: arena)
        server.shutdown()  // no listener needed: inputs come over socket pairs
        return server
    }()

    private static let consumer = KVBlockArena(numLayers: 2, numBlocks: 4, blockSize: 2, numKVHeads: 2, headDim: 4)

    /// The producer reads a consumer's messages on `fd` (a length-prefixed `KVBlockReadRequest`, then a
    /// same-host copy's `Done`) and answers. Returns whether it served the blocks.
    public static func asProducer(fd: Int32) -> Bool {
        guard let server = producer else { return false }
        server.hold(requestId, blockIds: blockIds, timeoutSeconds: 60)
        defer { _ = server.takeFinished() }
        return server.serveRead(fd)
    }

    /// The consumer asks for blocks 1 and 2, every head, on `fd` and reads the producer's answer (a
    /// length-prefixed `KVBlockReadReply`, then the blocks). Returns whether the read succeeded.
    public static func asConsumer(fd: Int32) -> Bool {
        let part = KVBlockFetcher.Part(port: 1, heads: 0..<2)
        let read = try? KVBlockFetcher.readPart(
            fd: fd, part: part, requestId: requestId, remoteBlockIds: blockIds, localBlockIds: [3, 0], into: consumer,
            deadline: Date() + 1, sameHostCopy: true)
        return read != nil
    }
}
