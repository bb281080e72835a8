/// The messages of one KV read over TCP. The consumer connects to the producer's `KVBlockServer` (one per
/// tensor-parallel rank of the producer) and sends a `KVBlockReadRequest`; the producer answers with a
/// `KVBlockReadReply`; when it is `ok`, the blocks follow as `KVBlockSlices` orders them: for each layer,
/// the K of every requested block in request order, then their V; within a block, token by token, the
/// requested heads (float32 in the hosts' native byte order: Pagoda runs on little-endian x86-64 only).
/// Then the producer frees the blocks and waits on the same connection for the consumer's next request
/// (consumers keep authenticated connections open between reads, `KVConnectionPool`); it closes the
/// connection after `KVBlockServer.idleSeconds` without one, or at the first error. A consumer may split one read over several
/// connections, each naming its range of layers (`layerStart`, `layerCount`, `connections`): the stream of
/// each is the above restricted to its layers, and the blocks are freed when the last connection has ended.
/// On one host the reply may instead offer a same-host copy (`KVSameHostCopy`); the consumer answers whether
/// it copied the blocks itself, and the stream follows only if it did not.
struct KVBlockReadRequest: Codable {
    var requestId: String
    var blockIds: [Int]
    /// The consumer's cache layout: the producer refuses a read whose layout differs from its own.
    var numLayers: Int
    var blockSize: Int
    var headDim: Int
    /// The global KV heads wanted, all of them cached by the producer rank read; a count of 0 reads
    /// nothing and only ends the hold (a reader that needs no head of this rank).
    var headStart: Int
    var headCount: Int
    /// Set when the consumer can copy the blocks out of the producer's memory (`KVSameHostCopy`): its host
    /// and PID namespace.
    var sameHost: KVSameHostCopy.Identity? = nil
    /// The layers this connection reads, and how many connections (each with its own layers, together all
    /// of them) read the request from this producer rank in parallel: the hold ends when the last has ended.
    var layerStart = 0
    var layerCount: Int? = nil
    var connections = 1
}

/// The producer's answer to a `KVBlockReadRequest`: `ok`, or why not (unknown or already freed request,
/// blocks not held, layout mismatch).
struct KVBlockReadReply: Codable {
    var ok: Bool
    var error: String?
    /// The producer's same-host copy offer (only to a consumer on its host and PID namespace): the consumer
    /// then answers `KVSameHostCopy.Done` before any block byte is streamed.
    var sameHostCopy: KVSameHostCopy.Offer? = nil
}
