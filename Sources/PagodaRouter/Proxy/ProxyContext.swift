import Logging
import NIOCore

/// What every client connection of one proxy shares: the balancer, the configuration, and one backend
/// connection pool per event loop (built once at start; each pool is used only on its own loop).
final class ProxyContext: @unchecked Sendable {
    let shared: SharedBalancer
    let configuration: ProxyConfiguration
    let logger: Logger
    private let pools: [ObjectIdentifier: BackendConnectionPool]

    init(group: EventLoopGroup, shared: SharedBalancer, configuration: ProxyConfiguration, logger: Logger) {
        self.shared = shared
        self.configuration = configuration
        self.logger = logger
        let connectTimeout = TimeAmount.nanoseconds(Int64(configuration.connectTimeout * 1e9))
        var pools: [ObjectIdentifier: BackendConnectionPool] = [:]
        for loop in group.makeIterator() {
            pools[ObjectIdentifier(loop)] = BackendConnectionPool(
                eventLoop: loop, addresses: shared.addresses, connectTimeout: connectTimeout)
        }
        self.pools = pools
    }

    /// The pool of `loop`, which must be a loop of the group this context was built for.
    func pool(for loop: EventLoop) -> BackendConnectionPool {
        guard let pool = pools[ObjectIdentifier(loop)] else {
            preconditionFailure("event loop \(loop) is not one of the proxy's")
        }
        return pool
    }
}
