import PagodaEngine

/// Chooses the engine core (data-parallel rank) for each request behind one API endpoint — a pure state
/// machine: the caller feeds it what the engines publish and what it sent, and asks for a rank; no
/// threads, no clocks, no I/O (tested that way in `EngineSelectorTests`).
///
/// Load score (vLLM's internal load balancer): `waiting × 4 + running`, from each engine's last published
/// statistics. Those are up to one publish interval old (the engine core sends them every 20 ms while
/// they change, and before every step's outputs) plus the socket transit; the requests this front-end
/// sent since are corrected for exactly: the engine reports how many add-requests it has received, so
/// `sent − received` requests are in transit and count as waiting. (vLLM adds its own in-flight count
/// between coordinator updates the same way.)
///
/// Beyond vLLM, prefix-aware: every engine publishes the hash of each full KV block entering or leaving
/// its prefix cache (`KVCacheEvents`), so the selector knows which blocks each engine holds. Among the
/// engines whose score is within `closeLoad` of the lowest (`max(closeLoadAbsolute, closeLoadFraction ×
/// lowest)`), it picks the one caching the longest prefix of the request's block hashes; ties go to the
/// lower score, then to the next rank after the previous choice (so equal engines take turns). A prefix
/// sent to an engine and not yet published (its request still prefilling) counts as held there: the
/// engine will store those blocks, and a burst of requests sharing a prefix would otherwise be spread
/// before the first one's blocks are announced (`pendingBlocks`, dropped when the request ends).
///
/// A rank that is down gets nothing; a request may pin a live rank (`X-data-parallel-rank` header or
/// vLLM's `data_parallel_rank` field).
public struct EngineSelector: Sendable {
    /// How close two loads must be for the prefix to decide.
    public struct Policy: Sendable, Equatable {
        public var prefixAware = true
        /// Score units (one waiting request = 4).
        public var closeLoadAbsolute = 8
        public var closeLoadFraction = 0.25
        public init(prefixAware: Bool = true, closeLoadAbsolute: Int = 8, closeLoadFraction: Double = 0.25) {
            self.prefixAware = prefixAware; self.closeLoadAbsolute = closeLoadAbsolute; self.closeLoadFraction = closeLoadFraction
        }
    }

    /// What the selector knows of one engine.
    public struct Engine: Sendable, Equatable {
        public var alive = true
        public var waiting = 0
        public var running = 0
        /// Requests sent to this engine, and how many it reported receiving.
        public var sent = 0
        public var received = 0
        /// Hash values of the full KV blocks in its prefix cache.
        public var cachedBlocks = Set<UInt64>()
        /// Blocks of requests sent to it and not finished, by how many such requests carry each.
        public var pendingBlocks: [UInt64: Int] = [:]
        public var inTransit: Int { max(0, sent - received) }
        public var score: Int { (waiting + inTransit) * 4 + running }
    }

    /// Why no rank was chosen.
    public enum Refusal: Error, Equatable, Sendable {
        case noLiveEngine
        case pinnedRankOutOfRange(Int, size: Int)
        case pinnedRankDown(Int)
    }

    public private(set) var engines: [Engine]
    public var policy: Policy
    private var lastChoice = -1

    public init(numEngines: Int, policy: Policy = Policy()) {
        engines = Array(repeating: Engine(), count: max(1, numEngines))
        self.policy = policy
    }

    // MARK: Inputs

    /// The engine published its statistics.
    public mutating func update(rank: Int, waiting: Int, running: Int, received: Int) {
        guard engines.indices.contains(rank) else { return }
        engines[rank].waiting = waiting
        engines[rank].running = running
        engines[rank].received = max(engines[rank].received, received)
    }

    /// The engine published prefix-cache changes.
    public mutating func apply(rank: Int, events: KVCacheEvents) {
        guard engines.indices.contains(rank) else { return }
        events.apply(to: &engines[rank].cachedBlocks)
    }

    /// The engine is gone (or back): a returning engine starts empty.
    public mutating func setAlive(rank: Int, _ alive: Bool) {
        guard engines.indices.contains(rank) else { return }
        if alive && !engines[rank].alive { engines[rank] = Engine() }
        engines[rank].alive = alive
    }

    // MARK: Choice

    /// The rank for a request whose prompt's full blocks hash to `blockHashes` (in order); records it as sent.
    public mutating func select(blockHashes: [UInt64], pinnedRank: Int? = nil) -> Result<Int, Refusal> {
        if let r = pinnedRank {
            guard engines.indices.contains(r) else { return .failure(.pinnedRankOutOfRange(r, size: engines.count)) }
            guard engines[r].alive else { return .failure(.pinnedRankDown(r)) }
            recordSent(r, blockHashes)
            return .success(r)
        }
        let live = engines.indices.filter { engines[$0].alive }
        guard let lowest = live.map({ engines[$0].score }).min() else { return .failure(.noLiveEngine) }
        let bound = max(policy.closeLoadAbsolute, Int(policy.closeLoadFraction * Double(lowest)))
        let close = live.filter { engines[$0].score <= lowest + bound }
        var best = -1
        var bestKey = (prefix: -1, score: Int.max, turn: Int.max)
        for r in close {
            let prefix = policy.prefixAware ? matchedPrefix(r, blockHashes) : 0
            let score = engines[r].score
            // Longest cached prefix first; without one the lowest score; then turns.
            let turn = (r - lastChoice - 1 + engines.count) % engines.count
            let key = (prefix: prefix, score: score, turn: turn)
            if key.prefix > bestKey.prefix
                || (key.prefix == bestKey.prefix && key.score < bestKey.score)
                || (key.prefix == bestKey.prefix && key.score == bestKey.score && key.turn < bestKey.turn) {
                best = r
                bestKey = key
            }
        }
        recordSent(best, blockHashes)
        lastChoice = best
        return .success(best)
    }

    private mutating func recordSent(_ r: Int, _ hashes: [UInt64]) {
        engines[r].sent += 1
        if policy.prefixAware { for h in hashes { engines[r].pendingBlocks[h, default: 0] += 1 } }
    }

    /// The request sent to `rank` with `blockHashes` ended (its blocks are published or gone).
    public mutating func finished(rank: Int, blockHashes: [UInt64]) {
        guard engines.indices.contains(rank), policy.prefixAware else { return }
        for h in blockHashes {
            if let n = engines[rank].pendingBlocks[h] { engines[rank].pendingBlocks[h] = n > 1 ? n - 1 : nil }
        }
    }

    /// Leading blocks of `hashes` that engine `rank` caches or will cache (a request carrying them is there).
    public func matchedPrefix(_ rank: Int, _ hashes: [UInt64]) -> Int {
        var n = 0
        for h in hashes {
            guard engines[rank].cachedBlocks.contains(h) || engines[rank].pendingBlocks[h] != nil else { break }
            n += 1
        }
        return n
    }
}
