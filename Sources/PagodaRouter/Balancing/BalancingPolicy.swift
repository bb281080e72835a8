/// How the proxy picks a backend among the healthy ones (`--policy`).
public enum BalancingPolicy: String, CaseIterable, Sendable {
    /// Least cost in flight (prompt tokens + weighted max_tokens); vllm-ascend's request-length-aware rule. Default.
    case leastCost = "least-cost"
    /// Next backend in turn.
    case roundRobin = "round-robin"
    /// Fewest requests in flight.
    case leastRequests = "least-requests"
    /// Back to the backend that recently got the same prompt prefix while loads stay within a bound
    /// (SGLang's cache-aware router); otherwise least cost.
    case cacheAware = "cache-aware"
}

/// When cache affinity may override load (`cache-aware`), after SGLang's thresholds.
public struct CacheAffinityBounds: Sendable, Equatable {
    /// Fraction of the prompt's blocks that must match a recorded prefix (0...1).
    public var cacheThreshold: Double = 0.5
    /// The affine backend is too loaded when its in-flight cost exceeds the least loaded one's by more
    /// than `balanceAbsThreshold` cost units AND is more than `balanceRelThreshold` times it.
    public var balanceAbsThreshold: Double = 2048
    public var balanceRelThreshold: Double = 1.5

    public init(cacheThreshold: Double = 0.5, balanceAbsThreshold: Double = 2048, balanceRelThreshold: Double = 1.5) {
        self.cacheThreshold = cacheThreshold
        self.balanceAbsThreshold = balanceAbsThreshold
        self.balanceRelThreshold = balanceRelThreshold
    }

    func overloaded(cost: Double, leastCost: Double) -> Bool {
        cost - leastCost > balanceAbsThreshold && cost > balanceRelThreshold * leastCost
    }
}
