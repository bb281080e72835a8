/// Where this node stands in a data-parallel deployment (vLLM's multi-node DP flags, checked together once):
/// which ranks run here, whether an API server runs here, and where the head listens for remote engine cores.
///
/// Internal load balancing: the head (no `--headless`) runs the API server(s) and ranks `0 ..< localSize` as
/// local engine cores; ranks `localSize ..< size` connect to it over TCP at `address:rpcPort`. A headless node
/// runs ranks `startRank ..< startRank + localSize`, which connect to the head; it has no API server.
/// Hybrid (`--data-parallel-hybrid-lb`, or a start rank above 0 without `--headless`): every node runs its own
/// API server(s) over its ranks `startRank ..< startRank + localSize`; an outside balancer spreads over the
/// nodes. External (`--data-parallel-external-lb` / `--data-parallel-rank r`): one rank per server.
public struct DataParallelDeployment: Sendable, Equatable {
    /// How requests reach the ranks (vLLM's data-parallel load-balancing modes).
    public enum LoadBalancing: String, Sendable {
        /// All ranks behind one server (on its node or joining from headless nodes).
        case `internal`
        /// This node's ranks behind this server; an outside balancer spreads over the nodes.
        case hybrid
        /// One rank per server; an outside balancer spreads over the ranks.
        case external
    }

    /// vLLM's `--data-parallel-rpc-port` default.
    public static let defaultRPCPort = 29550
    /// vLLM's `--data-parallel-address` default (its `data_parallel_master_ip`).
    public static let defaultAddress = "127.0.0.1"

    public var size: Int
    /// Ranks that run on this node.
    public var localSize: Int
    /// The first of them.
    public var startRank: Int
    /// This node runs engine cores only.
    public var headless: Bool
    /// `--data-parallel-rank r`: this server is rank r of an external deployment (one rank, no remote ranks).
    public var externalRank: Int?
    public var loadBalancing: LoadBalancing
    /// vLLM's automatic mode switches, for the start-up log (e.g. hybrid with one local rank is external).
    public var notes: [String] = []
    /// The head's address for remote engine cores.
    public var address: String
    public var rpcPort: Int

    /// The ranks on this node.
    public var localRanks: Range<Int> { startRank..<(startRank + localSize) }
    /// Ranks the head waits for over TCP (none on a headless node or in external mode).
    public var remoteRanks: [Int] {
        guard !headless, loadBalancing == .internal else { return [] }
        return (0..<size).filter { !localRanks.contains($0) }
    }

    /// Validates the flags as vLLM does (`serve.py`, `EngineArgs.create_engine_config`, `ParallelConfig`);
    /// the error names the flags.
    public init(
        size: Int, rank: Int? = nil, sizeLocal: Int? = nil, startRank: Int? = nil, headless: Bool = false,
        address: String? = nil, rpcPort: Int? = nil, apiServerCount: Int? = nil, hybridLB: Bool = false, externalLB: Bool = false
    ) throws {
        func fail(_ s: String) -> DataParallelDeploymentError { DataParallelDeploymentError(message: s) }
        guard size >= 1 else { throw fail("invalid --data-parallel-size \(size): must be at least 1") }
        if let sizeLocal, sizeLocal < 0 { throw fail("invalid --data-parallel-size-local \(sizeLocal): must not be negative") }
        if let startRank, startRank < 0 { throw fail("invalid --data-parallel-start-rank \(startRank): must not be negative") }
        if let rank, !(0..<size).contains(rank) {
            throw fail("invalid --data-parallel-rank \(rank): must be in 0..<\(size) (--data-parallel-size)")
        }
        if let rpcPort, !(1...65535).contains(rpcPort) {
            throw fail("invalid --data-parallel-rpc-port \(rpcPort): must be between 1 and 65535")
        }
        if let address, address.isEmpty { throw fail("invalid --data-parallel-address: empty") }
        if let apiServerCount, apiServerCount < 0 { throw fail("invalid --api-server-count \(apiServerCount): must not be negative") }
        // vLLM infers hybrid load balancing from a start rank above 0 on a node with an API server.
        let external = externalLB || rank != nil
        let hybrid = hybridLB || (!headless && (startRank ?? 0) > 0)
        if external && hybrid {
            throw fail(
                "cannot use more than one data-parallel load balancing mode: --data-parallel-external-lb (or --data-parallel-rank) and --data-parallel-hybrid-lb (or --data-parallel-start-rank above 0)"
            )
        }
        if headless {
            if hybridLB || externalLB {
                throw fail(
                    "--data-parallel-\(hybridLB ? "hybrid" : "external")-lb cannot be used with --headless (those modes run an API server on every node)"
                )
            }
            if let apiServerCount, apiServerCount > 0 {
                throw fail("--api-server-count \(apiServerCount) cannot be used with --headless (a headless node runs no API server)")
            }
            if rank != nil { throw fail("--data-parallel-rank cannot be used with --headless (use --data-parallel-start-rank)") }
        } else if let apiServerCount, apiServerCount < 1 {
            throw fail("invalid --api-server-count \(apiServerCount): must be at least 1 unless --headless is set")
        }
        if let sizeLocal, sizeLocal > size {
            throw fail("invalid --data-parallel-size-local \(sizeLocal): must be at most --data-parallel-size \(size)")
        }
        if let startRank, startRank >= size {
            throw fail("invalid --data-parallel-start-rank \(startRank): must be less than --data-parallel-size \(size)")
        }
        if external {
            guard let rank else { throw fail("--data-parallel-external-lb needs --data-parallel-rank (this server's rank)") }
            guard sizeLocal == nil || sizeLocal == 1 else {
                throw fail("--data-parallel-size-local must be 1 when --data-parallel-rank is set (one rank per server)")
            }
            if startRank != nil {
                throw fail("--data-parallel-start-rank cannot be used with --data-parallel-rank")
            }
        }
        if hybrid {
            guard let sizeLocal else {
                throw fail("--data-parallel-hybrid-lb needs --data-parallel-size-local (the ranks this node runs)")
            }
            guard sizeLocal >= 1 else {
                throw fail("--data-parallel-size-local must be at least 1 with --data-parallel-hybrid-lb (each node serves its own ranks)")
            }
        }
        let local = rank != nil ? 1 : (sizeLocal ?? size)
        let start = rank ?? startRank ?? 0
        if headless && local == 0 {
            throw fail("--data-parallel-size-local must be at least 1 with --headless (a headless node runs engine cores only)")
        }
        if start + local > size {
            throw fail("--data-parallel-start-rank \(start) + --data-parallel-size-local \(local) exceed --data-parallel-size \(size)")
        }
        var notes: [String] = []
        var mode: LoadBalancing = external ? .external : hybrid ? .hybrid : .internal
        if hybrid && local == 1 {
            notes.append("--data-parallel-hybrid-lb with one local rank is external load balancing: serving rank \(start) alone")
            mode = .external
        } else if hybrid && local == size {
            mode = .internal  // this node holds every rank: nothing for an outside balancer to spread
        }
        if let apiServerCount, apiServerCount > 1, mode == .internal, !headless, local < size {
            throw fail(
                "--api-server-count \(apiServerCount) with ranks on headless nodes (--data-parallel-size-local \(local) of \(size)) is not supported: run one API server on the head"
            )
        }
        self.size = size
        self.loadBalancing = mode
        self.notes = notes
        self.localSize = local
        self.startRank = start
        self.headless = headless
        self.externalRank = mode == .external ? start : nil
        self.address = address ?? Self.defaultAddress
        self.rpcPort = rpcPort ?? Self.defaultRPCPort
    }
}

/// A combination of data-parallel flags that cannot run; the message names the flags.
public struct DataParallelDeploymentError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public var description: String { message }
}
