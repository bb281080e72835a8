/// The messages of one KV read over TCP. The consumer connects to the producer's `KVBlockServer` and
/// sends a `KVBlockReadRequest`; the producer answers with a `KVBlockReadReply`; when it is `ok`, the
/// blocks follow layer by layer: for each layer, the K of every requested block in request order, then
/// their V (`blockFloats` float32 each, in the hosts' native byte order: Pagoda runs on little-endian
/// x86-64 only). Then the producer closes the connection and frees the blocks.
struct KVBlockReadRequest: Codable {
    var requestId: String
    var blockIds: [Int]
    /// The consumer's cache layout: the producer refuses a read whose layout differs from its own.
    var numLayers: Int
    var blockFloats: Int
}

/// The producer's answer to a `KVBlockReadRequest`: `ok`, or why not (unknown or already freed request,
/// blocks not held, layout mismatch).
struct KVBlockReadReply: Codable {
    var ok: Bool
    var error: String?
}
