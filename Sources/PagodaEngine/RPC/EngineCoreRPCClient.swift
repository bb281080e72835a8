import Foundation

/// The front-end side of the engine RPC (vLLM's `EngineCoreClient`): sends requests and aborts to
/// one engine core and delivers its outputs and statistics to callbacks on a reader thread.
///
/// Life cycle: `handshake(connection)` reads and accepts the engine's hello; `start(...)` begins
/// reading; `onClosed` fires exactly once, when the engine core goes away (crash, exit) or after
/// `shutdown()`, with the reason.
public final class EngineCoreRPCClient: @unchecked Sendable {
    public let handshakeInfo: EngineHandshake
    private let connection: EngineRPCConnection
    private let lock = NSLock()
    private var nextCallId: UInt64 = 1
    private var pendingCalls: [UInt64: (Result<String, Error>) -> Void] = [:]
    private var closedReason: String?
    private var latestStats = SchedulerStats()
    private var heartbeating = false

    /// Reads the engine's hello from a fresh connection and accepts it, or refuses it (a failure frame
    /// the engine reports, then this throws `EngineRPCError.refused`) when the protocol versions differ
    /// or `admit` returns a reason.
    public init(connection: EngineRPCConnection, admit: (EngineHandshake) -> String? = { _ in nil }) throws {
        self.connection = connection
        let first: EngineRPCMessage?
        do { first = try connection.receive() } catch {
            if case EngineRPCError.handshake(let reason) = error {  // another protocol version
                try? connection.send(.failure(reason))
                connection.close()
                throw EngineRPCError.refused(reason)
            }
            throw EngineRPCError.handshake("\(error)")
        }
        guard case .hello(let info)? = first else {
            connection.close()
            if case .failure(let reason)? = first { throw EngineRPCError.handshake("engine core failed: \(reason)") }
            throw EngineRPCError.handshake(
                first == nil ? "engine core closed the connection before its hello" : "expected hello, got \(first!)")
        }
        guard info.protocolVersion == EngineRPCProtocol.version else {
            let reason = "engine core speaks protocol v\(info.protocolVersion), this front-end v\(EngineRPCProtocol.version)"
            try? connection.send(.failure(reason))
            connection.close()
            throw EngineRPCError.refused(reason)
        }
        if let reason = admit(info) {
            try? connection.send(.failure(reason))
            connection.close()
            throw EngineRPCError.refused(reason)
        }
        handshakeInfo = info
        try connection.send(.helloAck)
    }

    /// Starts the reader thread; with `liveness`, also a heartbeat sender, and the connection counts as lost
    /// when nothing arrives for `liveness.timeout` seconds.
    public func start(
        onOutputs: @escaping ([EngineOutput]) -> Void,
        onStats: @escaping (SchedulerStats) -> Void = { _ in },
        onKVEvents: @escaping (KVCacheEvents) -> Void = { _ in },
        liveness: EngineRPCLiveness? = nil,
        onClosed: @escaping (String) -> Void
    ) {
        if let liveness {
            connection.setReceiveTimeout(liveness.timeout)
            startHeartbeats(liveness)
        }
        let thread = Thread { [self] in
            var reason = "engine core closed the connection"
            readLoop: while true {
                do {
                    guard let message = try connection.receive() else { break readLoop }
                    switch message {
                    case .outputs(let outputs): onOutputs(outputs)
                    case .stats(let s):
                        lock.lock(); latestStats = s; lock.unlock()
                        onStats(s)
                    case .kvEvents(let e): onKVEvents(e)
                    case .utilityResult(let r):
                        lock.lock(); let done = pendingCalls.removeValue(forKey: r.callId); lock.unlock()
                        if let e = r.error { done?(.failure(EngineRPCError.socket(e))) } else { done?(.success(r.result ?? "")) }
                    case .failure(let why):
                        reason = "engine core failed: \(why)"
                        break readLoop
                    case .hello, .helloAck, .addRequest, .abort, .utility, .shutdown, .heartbeat:
                        continue
                    }
                } catch {
                    reason = "engine RPC read failed: \(error)"
                    break readLoop
                }
            }
            lock.lock()
            if closedReason == nil { closedReason = reason } else { reason = closedReason! }
            let calls = pendingCalls; pendingCalls = [:]
            lock.unlock()
            connection.close()
            for (_, done) in calls { done(.failure(EngineRPCError.closed)) }
            onClosed(reason)
        }
        thread.name = "engine-rpc-client"
        thread.start()
    }

    /// Sends a heartbeat every `liveness.interval` seconds until the connection closes (once; `start` with
    /// `liveness` calls it too). A head calls it as soon as it accepts a remote engine, which may wait for
    /// the other ranks before the front-end starts.
    public func startHeartbeats(_ liveness: EngineRPCLiveness) {
        lock.lock()
        let already = heartbeating
        heartbeating = true
        lock.unlock()
        if already { return }
        let beat = Thread { [self] in
            while closed == nil {
                if (try? connection.send(.heartbeat)) == nil { return }
                Thread.sleep(forTimeInterval: liveness.interval)
            }
        }
        beat.name = "engine-rpc-heartbeat"
        beat.start()
    }

    /// Nil while connected; the reason once the engine core is gone.
    public var closed: String? { lock.lock(); defer { lock.unlock() }; return closedReason }

    /// The last statistics the engine core published.
    public var stats: SchedulerStats { lock.lock(); defer { lock.unlock() }; return latestStats }

    public func addRequest(_ request: EngineRequest) throws {
        if let reason = closed { throw EngineRPCError.socket(reason) }
        try connection.send(.addRequest(request))
    }

    public func abortRequests(_ ids: [String]) {
        guard !ids.isEmpty else { return }
        try? connection.send(.abort(ids))
    }

    /// A utility call; `completion` runs on the reader thread (or at once if the engine is gone).
    public func utility(method: String, arguments: [String] = [], completion: @escaping (Result<String, Error>) -> Void) {
        lock.lock()
        if closedReason != nil { lock.unlock(); completion(.failure(EngineRPCError.closed)); return }
        let id = nextCallId; nextCallId += 1
        pendingCalls[id] = completion
        lock.unlock()
        do { try connection.send(.utility(EngineUtilityCall(callId: id, method: method, arguments: arguments))) } catch {
            lock.lock(); let done = pendingCalls.removeValue(forKey: id); lock.unlock()
            done?(.failure(error))
        }
    }

    /// Async form of `utility`.
    public func utility(method: String, arguments: [String] = []) async throws -> String {
        try await withCheckedThrowingContinuation { cont in
            utility(method: method, arguments: arguments) { cont.resume(with: $0) }
        }
    }

    /// Asks the engine core to finish and exit, and closes the connection.
    public func shutdown(reason: String = "front-end shut down") {
        lock.lock(); if closedReason == nil { closedReason = reason }; lock.unlock()
        try? connection.send(.shutdown)
        connection.close()
    }
}
