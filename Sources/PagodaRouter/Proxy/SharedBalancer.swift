import Foundation

/// The one `LoadBalancer` that request handlers and the health prober share; every access holds the lock.
/// Critical sections are a few dictionary operations, so a plain lock beats an actor hop here.
final class SharedBalancer: @unchecked Sendable {
    private let lock = NSLock()
    private var balancer: LoadBalancer
    let addresses: [BackendAddress]

    init(_ balancer: LoadBalancer) {
        self.balancer = balancer
        self.addresses = balancer.backends.map(\.address)
    }

    func withLock<T>(_ body: (inout LoadBalancer) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&balancer)
    }
}

/// A request's lease, given back exactly once: by `release`, or when the token is dropped
/// (the response was discarded, the client vanished before the body was written, a task was cancelled).
/// `LoadBalancer.release` is itself idempotent per lease id, so both paths may run safely.
final class LeaseToken: @unchecked Sendable {
    let lease: LoadBalancer.Lease
    private let shared: SharedBalancer

    init(_ lease: LoadBalancer.Lease, _ shared: SharedBalancer) {
        self.lease = lease
        self.shared = shared
    }

    func release(_ outcome: LoadBalancer.Outcome) {
        shared.withLock { _ = $0.release(lease, outcome: outcome) }
    }

    deinit { release(.abandoned) }
}
