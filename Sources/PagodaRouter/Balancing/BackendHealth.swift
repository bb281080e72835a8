/// Health of one backend as the proxy sees it: a small state machine fed by probes and request outcomes.
///
/// - healthy → unhealthy after `unhealthyAfter` consecutive failed probes, or at once when a request
///   could not reach the backend (connection refused/reset: the process is gone or not listening).
/// - unhealthy → healthy after `healthyAfter` consecutive successful probes.
/// A backend starts healthy, so the proxy serves before the first probe round completes.
public struct BackendHealth: Sendable, Equatable {
    public enum State: String, Sendable { case healthy, unhealthy }

    public private(set) var state: State = .healthy
    public private(set) var consecutiveProbeFailures = 0
    public private(set) var consecutiveProbeSuccesses = 0
    /// Why it is unhealthy (last probe or request error), for logs.
    public private(set) var lastError: String?
    public let unhealthyAfter: Int
    public let healthyAfter: Int

    public init(unhealthyAfter: Int = 2, healthyAfter: Int = 1) {
        precondition(unhealthyAfter >= 1 && healthyAfter >= 1)
        self.unhealthyAfter = unhealthyAfter
        self.healthyAfter = healthyAfter
    }

    public var isHealthy: Bool { state == .healthy }

    /// Returns the new state when it changed.
    @discardableResult
    public mutating func probeSucceeded() -> State? {
        consecutiveProbeFailures = 0
        consecutiveProbeSuccesses += 1
        guard state == .unhealthy, consecutiveProbeSuccesses >= healthyAfter else { return nil }
        state = .healthy
        lastError = nil
        return state
    }

    @discardableResult
    public mutating func probeFailed(_ reason: String) -> State? {
        consecutiveProbeSuccesses = 0
        consecutiveProbeFailures += 1
        lastError = reason
        guard state == .healthy, consecutiveProbeFailures >= unhealthyAfter else { return nil }
        state = .unhealthy
        return state
    }

    /// A request could not reach the backend or lost its connection.
    @discardableResult
    public mutating func connectionFailed(_ reason: String) -> State? {
        consecutiveProbeSuccesses = 0
        lastError = reason
        guard state == .healthy else { return nil }
        state = .unhealthy
        return state
    }
}
