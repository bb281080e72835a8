import Foundation

/// The engine-core side of the engine RPC when several API-server processes share one engine core
/// (`pagoda serve --api-server-count K`): the engine core listens, and every front-end that connects gets
/// its own session with the same handshake as `EngineCoreRPCServer`'s single connection.
///
/// - Request ids: the engine sees `"<session>:<id>"`, so two front-ends may use the same id; outputs go back
///   only to the session that sent the request, under its own id.
/// - Statistics and prefix-cache events go to every session (the events once per change, to all); each
///   session's `numRequestsReceived` counts only its own add-requests, so each front-end corrects for its
///   own in-flight requests exactly, and sees the other front-ends' requests once the engine has them
///   (in `numWaiting`/`numRunning`).
/// - A session that ends (its front-end closed the connection, failed, or said shutdown) aborts its
///   requests; the engine core keeps serving the others and accepting new ones until `stop()`.
/// - Liveness (engine RPC v4): with `liveness`, each session sends heartbeats and ends when nothing arrives
///   from its front-end for `liveness.timeout` seconds, as `EngineCoreRPCServer` does; heartbeats received are
///   ignored (they only keep the connection alive).
///
/// Threads: `run()`'s caller accepts connections; one reader thread per session; the backend's loop
/// thread sends outputs; a publisher thread sends statistics when they change (every `statsInterval`).
public final class EngineCoreRPCHub: @unchecked Sendable {
    /// One connected front-end.
    final class Session: @unchecked Sendable {
        let id: Int
        let connection: EngineRPCConnection
        /// Set once the session has ended (guarded by the hub's `lock`); stops its heartbeat thread.
        var ended = false
        /// Add-request frames received from this front-end (guarded by the hub's `publishLock`).
        var numRequestsReceived = 0
        /// The last statistics sent to this front-end (guarded by `publishLock`).
        var lastStatsSent: SchedulerStats?
        init(id: Int, connection: EngineRPCConnection) { self.id = id; self.connection = connection }
    }

    /// Where an engine-side request id's outputs go.
    struct Route {
        let session: Int
        let requestId: String
    }

    private let listener: EngineRPCListener
    private let handshake: EngineHandshake
    private let backend: EngineCoreRPCBackend
    private let statsInterval: Double
    private let liveness: EngineRPCLiveness?
    private let log: (String) -> Void
    /// Guards `sessions`, `routes`, `nextSession`, `stopped`.
    private let lock = NSLock()
    private var sessions: [Int: Session] = [:]
    private var routes: [String: Route] = [:]
    private var nextSession = 1
    private var stopped = false
    /// Serializes statistics and event publishing (events are taken and sent under it, so outputs sent
    /// after a publish never overtake the events of their step).
    private let publishLock = NSLock()

    /// `log` receives one line per session that joins or leaves. With `liveness`, every session sends
    /// heartbeats and gives its front-end up after `liveness.timeout` seconds of silence.
    public init(
        listener: EngineRPCListener, handshake: EngineHandshake, backend: EngineCoreRPCBackend,
        statsInterval: Double = 0.02, liveness: EngineRPCLiveness? = nil, log: @escaping (String) -> Void = { _ in }
    ) {
        self.listener = listener; self.handshake = handshake; self.backend = backend
        self.statsInterval = statsInterval; self.liveness = liveness; self.log = log
    }

    /// The number of connected front-ends.
    public var numSessions: Int { lock.lock(); defer { lock.unlock() }; return sessions.count }

    /// Serves until `stop()`: accepts front-ends, runs the backend; the backend is shut down on return.
    public func run() {
        backend.start(onOutputs: { [self] outputs in deliver(outputs) })
        startStatsPublisher()
        while !isStopped {
            let connection: EngineRPCConnection
            do { connection = try listener.accept(timeout: 0.25) } catch { continue }
            lock.lock()
            let session = Session(id: nextSession, connection: connection)
            nextSession += 1
            lock.unlock()
            let thread = Thread { [self] in serve(session) }
            thread.name = "engine-rpc-session-\(session.id)"
            thread.start()
        }
        lock.lock(); let all = Array(sessions.values); sessions = [:]; lock.unlock()
        for s in all { s.connection.close() }
        backend.shutdown()
    }

    /// Makes `run()` return (from any thread, e.g. a signal handler's queue).
    public func stop() { lock.lock(); stopped = true; lock.unlock() }

    private var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopped }

    /// Handshake, then the session's messages until it ends.
    private func serve(_ s: Session) {
        do {
            try s.connection.send(.hello(handshake))
            guard case .helloAck? = try s.connection.receive() else {
                s.connection.close()
                return
            }
        } catch {
            s.connection.close()
            return
        }
        lock.lock()
        if stopped { lock.unlock(); s.connection.close(); return }
        sessions[s.id] = s
        let count = sessions.count
        lock.unlock()
        log("front-end session \(s.id) joined (\(count) connected)")
        if let liveness {
            s.connection.setReceiveTimeout(liveness.timeout)
            startHeartbeats(s, every: liveness.interval)
        }
        let why = readLoop(s)
        end(s, why)
    }

    private func readLoop(_ s: Session) -> String {
        while true {
            let message: EngineRPCMessage?
            do { message = try s.connection.receive() } catch { return "\(error)" }
            guard let message else { return "closed the connection" }
            switch message {
            case .addRequest(var request):
                let original = request.requestId
                let internalId = "\(s.id):\(original)"
                request.requestId = internalId
                lock.lock(); routes[internalId] = Route(session: s.id, requestId: original); lock.unlock()
                publishLock.lock(); s.numRequestsReceived += 1; publishLock.unlock()
                do {
                    try backend.addRequest(request)
                } catch {
                    lock.lock(); routes[internalId] = nil; lock.unlock()
                    let out = EngineOutput(requestId: original, newTokenIds: [], finishReason: .error, error: "\(error)")
                    try? s.connection.send(.outputs([out]))
                }
            case .abort(let ids):
                // An aborted request produces no further output: its route goes now.
                let internalIds = ids.map { "\(s.id):\($0)" }
                lock.lock(); for id in internalIds { routes[id] = nil }; lock.unlock()
                backend.abortRequests(internalIds)
            case .utility(let call):
                let result: EngineUtilityResult
                do {
                    result = EngineUtilityResult(
                        callId: call.callId, result: try backend.utility(method: call.method, arguments: call.arguments), error: nil)
                } catch {
                    result = EngineUtilityResult(callId: call.callId, result: nil, error: "\(error)")
                }
                try? s.connection.send(.utilityResult(result))
            case .shutdown:
                // One front-end of several leaving does not stop the shared engine core.
                return "said shutdown"
            case .failure(let reason):
                return "failed: \(reason)"
            case .hello, .helloAck, .outputs, .stats, .utilityResult, .kvEvents, .heartbeat:
                continue  // not meant for this side (a heartbeat only keeps the connection alive)
            }
        }
    }

    /// Removes a session and aborts the requests it had in the engine.
    private func end(_ s: Session, _ why: String) {
        lock.lock()
        sessions[s.id] = nil
        s.ended = true
        var orphaned: [String] = []
        for (id, route) in routes where route.session == s.id { orphaned.append(id) }
        for id in orphaned { routes[id] = nil }
        let count = sessions.count
        lock.unlock()
        s.connection.close()
        if !orphaned.isEmpty { backend.abortRequests(orphaned) }
        log("front-end session \(s.id) left (\(why)); \(orphaned.count) of its requests aborted; \(count) connected")
    }

    /// One step's outputs: statistics first (to every session), then each output to its own session.
    private func deliver(_ outputs: [EngineOutput]) {
        guard !outputs.isEmpty else { return }
        publish()
        var bySession: [Int: [EngineOutput]] = [:]
        lock.lock()
        for var o in outputs {
            guard let route = routes[o.requestId] else { continue }  // its front-end left
            if o.finishReason != nil { routes[o.requestId] = nil }
            o.requestId = route.requestId
            bySession[route.session, default: []].append(o)
        }
        let targets = bySession.compactMap { id, outs in sessions[id].map { ($0, outs) } }
        lock.unlock()
        for (s, outs) in targets { try? s.connection.send(.outputs(outs)) }
    }

    /// Sends each session the statistics when they differ from the last it got (with its own received
    /// count), then the prefix-cache changes when there are any.
    private func publish() {
        publishLock.lock(); defer { publishLock.unlock() }
        lock.lock(); let all = Array(sessions.values); lock.unlock()
        let base = backend.currentStats()
        let events = backend.takeKVEvents()
        for s in all {
            var stats = base
            stats.numRequestsReceived = s.numRequestsReceived
            if stats != s.lastStatsSent {
                if (try? s.connection.send(.stats(stats))) != nil { s.lastStatsSent = stats }
            }
            if !events.isEmpty { try? s.connection.send(.kvEvents(events)) }
        }
    }

    /// Sends `s` a heartbeat every `interval` seconds until it ends or the hub stops.
    private func startHeartbeats(_ s: Session, every interval: Double) {
        let thread = Thread { [self] in
            while true {
                lock.lock(); let done = stopped || s.ended; lock.unlock()
                if done { return }
                if (try? s.connection.send(.heartbeat)) == nil { return }
                Thread.sleep(forTimeInterval: interval)
            }
        }
        thread.name = "engine-rpc-heartbeat-\(s.id)"
        thread.start()
    }

    private func startStatsPublisher() {
        let thread = Thread { [self] in
            while !isStopped {
                publish()
                Thread.sleep(forTimeInterval: statsInterval)
            }
        }
        thread.name = "engine-rpc-stats"
        thread.start()
    }
}
