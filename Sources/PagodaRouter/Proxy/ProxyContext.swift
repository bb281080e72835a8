import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// What every client connection of one proxy shares: the balancer, the configuration, and one backend
/// connection pool per event loop (built once at start; each pool is used only on its own loop).
final class ProxyContext: @unchecked Sendable {
    let shared: SharedBalancer
    let configuration: ProxyConfiguration
    let logger: Logger
    private let pools: [ObjectIdentifier: BackendConnectionPool]
    /// Request ids the proxy makes: `proxy-<random per process>-<counter>` (a UUID per request costs a
    /// random-number system call).
    private let requestIDPrefix = "proxy-" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16) + "-"
    private let requestIDLock = NSLock()
    private var requestCount: UInt64 = 0

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

    func makeRequestID() -> String {
        requestIDLock.lock()
        requestCount += 1
        let number = requestCount
        requestIDLock.unlock()
        return requestIDPrefix + String(number, radix: 16)
    }

    /// The headers every request to backend `backend` carries: its Host, the request's X-Request-Id and the
    /// client's Authorization.
    func backendHeaders(_ backend: Int, requestID: String, authorization: String?) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.reserveCapacity(5)
        headers.add(name: "host", value: shared.addresses[backend].description)
        headers.add(name: "x-request-id", value: requestID)
        if let authorization { headers.add(name: "authorization", value: authorization) }
        return headers
    }

    /// The pool of `loop`, which must be a loop of the group this context was built for.
    func pool(for loop: EventLoop) -> BackendConnectionPool {
        guard let pool = pools[ObjectIdentifier(loop)] else {
            preconditionFailure("event loop \(loop) is not one of the proxy's")
        }
        return pool
    }
}
