/// The proxy's routing decisions and load accounting: a pure state machine, no I/O, no clock, no locks.
///
/// The HTTP side owns one behind a lock and feeds it events: `acquire` a lease for a request,
/// `release` it when the response ends (however it ends), probe results and connection failures.
/// Invariants (checked by the unit tests):
/// - a backend's `inFlightCost`/`inFlightRequests` are the sums over its open leases;
/// - a lease is released at most once (`release` of an unknown or released lease is a no-op);
/// - an unhealthy or excluded backend never gets a lease.
public struct LoadBalancer: Sendable {
    /// One backend's accounting.
    public struct Backend: Sendable, Equatable {
        public let address: BackendAddress
        public internal(set) var inFlightRequests = 0
        public internal(set) var inFlightCost: Double = 0
        /// Requests routed here (each attempt counts).
        public internal(set) var routed: UInt64 = 0
        /// Cost routed here in total.
        public internal(set) var routedCost: Double = 0
        /// Attempts that failed at this backend (unreachable, lost connection, 5xx before any byte).
        public internal(set) var failures: UInt64 = 0
        public internal(set) var health: BackendHealth
    }

    /// A request's claim on a backend, returned by `acquire` and given back to `release`.
    public struct Lease: Hashable, Sendable {
        public let id: UInt64
        public let backend: Int
        public let cost: Double
    }

    /// How a leased request ended.
    public enum Outcome: Sendable, Equatable {
        case completed
        /// The backend failed this request (it counts as a failure of that backend).
        case backendFailed
        /// The client went away or the proxy gave up for a reason not the backend's.
        case abandoned
    }

    /// What the router needs to know about a request to place it.
    public struct RouteRequest: Sendable {
        public var cost: Double
        /// `PrefixIndex.blockKeys` of the prompt; only `cache-aware` uses them.
        public var prefixKeys: [UInt64]

        public init(cost: Double, prefixKeys: [UInt64] = []) {
            self.cost = cost
            self.prefixKeys = prefixKeys
        }
    }

    public let policy: BalancingPolicy
    public let affinity: CacheAffinityBounds
    public private(set) var backends: [Backend]
    public private(set) var prefixIndex: PrefixIndex
    /// Attempts that were retried on another backend.
    public private(set) var retries: UInt64 = 0
    /// Requests refused because no healthy backend was left.
    public private(set) var rejected: UInt64 = 0
    /// Requests placed by prefix affinity rather than load (`cache-aware`).
    public private(set) var affinityHits: UInt64 = 0
    private var openLeases: [UInt64: Lease] = [:]
    private var nextLeaseID: UInt64 = 1
    private var roundRobinCursor = 0

    public init(backends addresses: [BackendAddress], policy: BalancingPolicy = .leastCost,
                affinity: CacheAffinityBounds = .init(), prefixIndex: PrefixIndex = .init(),
                health: BackendHealth = .init()) {
        precondition(!addresses.isEmpty, "at least one backend")
        self.backends = addresses.map { Backend(address: $0, health: health) }
        self.policy = policy
        self.affinity = affinity
        self.prefixIndex = prefixIndex
    }

    public var openLeaseCount: Int { openLeases.count }
    public var healthyCount: Int { backends.filter(\.health.isHealthy).count }

    // MARK: Routing

    /// Picks a healthy backend not in `excluding` and charges it the request's cost; nil when none is left.
    public mutating func acquire(_ request: RouteRequest, excluding: Set<Int> = []) -> Lease? {
        let candidates = backends.indices.filter { backends[$0].health.isHealthy && !excluding.contains($0) }
        guard !candidates.isEmpty else {
            rejected += 1
            return nil
        }
        if !excluding.isEmpty { retries += 1 }
        let chosen = choose(request, among: candidates)
        if policy == .cacheAware { prefixIndex.record(request.prefixKeys, backend: chosen) }
        let lease = Lease(id: nextLeaseID, backend: chosen, cost: request.cost)
        nextLeaseID += 1
        openLeases[lease.id] = lease
        backends[chosen].inFlightRequests += 1
        backends[chosen].inFlightCost += request.cost
        backends[chosen].routed += 1
        backends[chosen].routedCost += request.cost
        return lease
    }

    private mutating func choose(_ request: RouteRequest, among candidates: [Int]) -> Int {
        switch policy {
        case .roundRobin:
            // The first candidate at or after the cursor, so skipping an unhealthy backend keeps the turn order.
            let n = backends.count
            let cursor = roundRobinCursor
            let chosen = (0..<n).lazy.map { (cursor + $0) % n }.first(where: candidates.contains)!
            roundRobinCursor = (chosen + 1) % n
            return chosen
        case .leastRequests:
            return candidates.min { lhs, rhs in
                (backends[lhs].inFlightRequests, backends[lhs].inFlightCost, backends[lhs].routed)
                    < (backends[rhs].inFlightRequests, backends[rhs].inFlightCost, backends[rhs].routed)
            }!
        case .leastCost:
            return leastCost(candidates)
        case .cacheAware:
            let fallback = leastCost(candidates)
            guard !request.prefixKeys.isEmpty, let match = prefixIndex.longestMatch(request.prefixKeys),
                  candidates.contains(match.backend),
                  Double(match.matchedBlocks) / Double(request.prefixKeys.count) >= affinity.cacheThreshold,
                  !affinity.overloaded(cost: backends[match.backend].inFlightCost,
                                       leastCost: backends[fallback].inFlightCost)
            else { return fallback }
            affinityHits += 1
            return match.backend
        }
    }

    /// Least cost in flight; ties go to fewer requests in flight, then to the one routed least (spreads an idle start).
    private func leastCost(_ candidates: [Int]) -> Int {
        candidates.min { lhs, rhs in
            (backends[lhs].inFlightCost, backends[lhs].inFlightRequests, backends[lhs].routed)
                < (backends[rhs].inFlightCost, backends[rhs].inFlightRequests, backends[rhs].routed)
        }!
    }

    /// Gives the lease's cost back. Returns false (and changes nothing) when it was already released.
    @discardableResult
    public mutating func release(_ lease: Lease, outcome: Outcome) -> Bool {
        guard openLeases.removeValue(forKey: lease.id) != nil else { return false }
        backends[lease.backend].inFlightRequests -= 1
        backends[lease.backend].inFlightCost -= lease.cost
        if backends[lease.backend].inFlightRequests == 0 {
            backends[lease.backend].inFlightCost = 0  // no drift from floating-point sums
        }
        if outcome == .backendFailed { backends[lease.backend].failures += 1 }
        return true
    }

    // MARK: Health events

    /// Result of a periodic probe; returns the new state when it changed.
    @discardableResult
    public mutating func probeResult(backend: Int, error: String?) -> BackendHealth.State? {
        let change = error.map { backends[backend].health.probeFailed($0) } ?? backends[backend].health.probeSucceeded()
        if change == .unhealthy { prefixIndex.forget(backend: backend) }
        return change
    }

    /// A request could not reach `backend`; it is taken out of rotation until a probe succeeds.
    @discardableResult
    public mutating func connectionFailed(backend: Int, error: String) -> BackendHealth.State? {
        let change = backends[backend].health.connectionFailed(error)
        if change == .unhealthy { prefixIndex.forget(backend: backend) }
        return change
    }

    /// A healthy backend for a request that carries no load (`/v1/models`), in turn; nil when none.
    public mutating func pickForAuxiliary(excluding: Set<Int> = []) -> Int? {
        let n = backends.count
        for step in 0..<n {
            let index = (roundRobinCursor + step) % n
            if backends[index].health.isHealthy && !excluding.contains(index) { return index }
        }
        return nil
    }
}
