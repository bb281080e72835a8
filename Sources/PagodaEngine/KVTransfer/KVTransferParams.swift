/// A request's `kv_transfer_params` (vLLM's field of the same name, in request and response bodies).
///
/// To a prefill server the proxy sends `do_remote_decode: true`: keep the prompt's blocks for a decode
/// server. The prefill response carries `do_remote_prefill: true` with where to read them
/// (`remote_engine_id`, `remote_host`, `remote_port`, `remote_block_ids`, `remote_request_id`); the proxy
/// hands those to the decode server, whose scheduler waits for the blocks before decoding.
public struct KVTransferParams: Sendable, Codable, Equatable {
    public var doRemoteDecode: Bool?
    public var doRemotePrefill: Bool?
    public var remoteEngineId: String?
    public var remoteHost: String?
    public var remotePort: Int?
    public var remoteBlockIds: [Int]?
    /// The producer's id of the request, the key its KV server holds the blocks under.
    public var remoteRequestId: String?
    /// Prompt tokens the producer's blocks cover.
    public var remoteNumTokens: Int?
    /// The KV server of every tensor-parallel rank of the producer, by rank (Pagoda's addition; absent:
    /// one rank, at `remote_port`).
    public var remotePorts: [Int]?

    public init(
        doRemoteDecode: Bool? = nil, doRemotePrefill: Bool? = nil, remoteEngineId: String? = nil, remoteHost: String? = nil,
        remotePort: Int? = nil, remoteBlockIds: [Int]? = nil, remoteRequestId: String? = nil, remoteNumTokens: Int? = nil,
        remotePorts: [Int]? = nil
    ) {
        self.doRemoteDecode = doRemoteDecode; self.doRemotePrefill = doRemotePrefill; self.remoteEngineId = remoteEngineId
        self.remoteHost = remoteHost; self.remotePort = remotePort; self.remoteBlockIds = remoteBlockIds
        self.remoteRequestId = remoteRequestId; self.remoteNumTokens = remoteNumTokens
        self.remotePorts = remotePorts
    }

    enum CodingKeys: String, CodingKey {
        case doRemoteDecode = "do_remote_decode", doRemotePrefill = "do_remote_prefill", remoteEngineId = "remote_engine_id"
        case remoteHost = "remote_host", remotePort = "remote_port", remoteBlockIds = "remote_block_ids"
        case remoteRequestId = "remote_request_id", remoteNumTokens = "remote_num_tokens", remotePorts = "remote_ports"
    }

    /// The producer to read from, when the params ask for a remote prefill and name one completely.
    public var remoteSource: (host: String, ports: [Int], requestId: String, blockIds: [Int])? {
        guard doRemotePrefill == true, let h = remoteHost, let p = remotePort, let r = remoteRequestId, let b = remoteBlockIds,
            !b.isEmpty
        else { return nil }
        let ports = remotePorts ?? [p]
        guard !ports.isEmpty, ports.allSatisfy({ (1...65535).contains($0) }) else { return nil }
        return (h, ports, r, b)
    }
}
