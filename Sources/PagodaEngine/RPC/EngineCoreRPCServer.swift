import Foundation

/// The engine-core side of the engine RPC (vLLM's `EngineCoreProc` I/O): sends the handshake,
/// then turns incoming messages into backend calls and the backend's outputs and statistics into
/// outgoing messages, until the front-end says shutdown or goes away.
///
/// Threads: the caller's thread reads messages (`run()`); the backend's loop thread sends
/// outputs; a publisher thread sends statistics when they change (every `statsInterval`).
public final class EngineCoreRPCServer: @unchecked Sendable {
    /// Why `run()` returned.
    public enum Exit: Equatable {
        case shutdownRequested
        case frontEndGone(String)
    }

    private let connection: EngineRPCConnection
    private let handshake: EngineHandshake
    private let backend: EngineCoreRPCBackend
    private let statsInterval: Double
    private let liveness: EngineRPCLiveness?
    private let stopLock = NSLock()
    private var stopped = false
    private let statsLock = NSLock()
    private var lastStatsSent: SchedulerStats?
    /// Add-request frames received (guarded by `statsLock`).
    private var numRequestsReceived = 0

    /// With `liveness` (an engine on another host), this side sends heartbeats and gives the front-end up
    /// when nothing arrives from it for `liveness.timeout` seconds.
    public init(
        connection: EngineRPCConnection, handshake: EngineHandshake, backend: EngineCoreRPCBackend,
        statsInterval: Double = 0.02, liveness: EngineRPCLiveness? = nil
    ) {
        self.connection = connection; self.handshake = handshake; self.backend = backend; self.statsInterval = statsInterval
        self.liveness = liveness
    }

    /// Serves until shutdown or until the front-end disconnects; the backend is shut down on return.
    public func run() -> Exit {
        let exit = serve()
        stopLock.lock(); stopped = true; stopLock.unlock()
        backend.shutdown()
        connection.close()
        return exit
    }

    private func serve() -> Exit {
        do {
            try connection.send(.hello(handshake))
            switch try connection.receive() {
            case .helloAck?: break
            case .failure(let reason)?: return .frontEndGone("front-end refused the handshake: \(reason)")
            case nil: return .frontEndGone("front-end closed the connection during the handshake")
            case let other?: return .frontEndGone("expected helloAck, got \(other)")
            }
        } catch {
            return .frontEndGone("\(error)")
        }

        let connection = self.connection
        if let liveness {
            connection.setReceiveTimeout(liveness.timeout)
            startHeartbeats(every: liveness.interval)
        }
        backend.start(onOutputs: { [self] outputs in
            guard !outputs.isEmpty else { return }
            // Statistics first: whoever sees these outputs sees load figures at least as new.
            try? sendStatsIfChanged()
            try? connection.send(.outputs(outputs))
        })
        startStatsPublisher()

        while true {
            let message: EngineRPCMessage?
            do { message = try connection.receive() } catch { return .frontEndGone("\(error)") }
            guard let message else { return .frontEndGone("front-end closed the connection") }
            switch message {
            case .addRequest(let request):
                statsLock.lock(); numRequestsReceived += 1; statsLock.unlock()
                do {
                    try backend.addRequest(request)
                } catch {
                    let out = EngineOutput(requestId: request.requestId, newTokenIds: [], finishReason: .error, error: "\(error)")
                    try? connection.send(.outputs([out]))
                }
            case .abort(let ids):
                backend.abortRequests(ids)
            case .utility(let call):
                let result: EngineUtilityResult
                do {
                    result = EngineUtilityResult(
                        callId: call.callId, result: try backend.utility(method: call.method, arguments: call.arguments), error: nil)
                } catch {
                    result = EngineUtilityResult(callId: call.callId, result: nil, error: "\(error)")
                }
                try? connection.send(.utilityResult(result))
            case .shutdown:
                return .shutdownRequested
            case .failure(let reason):
                return .frontEndGone("front-end failed: \(reason)")
            case .hello, .helloAck, .outputs, .stats, .utilityResult, .kvEvents, .heartbeat:
                continue  // not meant for this side; ignore
            }
        }
    }

    /// Sends the backend's statistics when they differ from the last ones sent, then its prefix-cache
    /// changes when there are any.
    private func sendStatsIfChanged() throws {
        statsLock.lock(); defer { statsLock.unlock() }
        var s = backend.currentStats()
        s.numRequestsReceived = numRequestsReceived
        if s != lastStatsSent {
            try connection.send(.stats(s))
            lastStatsSent = s
        }
        let events = backend.takeKVEvents()
        if !events.isEmpty { try connection.send(.kvEvents(events)) }
    }

    private func startHeartbeats(every interval: Double) {
        let thread = Thread { [self] in
            while true {
                stopLock.lock(); let done = stopped; stopLock.unlock()
                if done { return }
                if (try? connection.send(.heartbeat)) == nil { return }
                Thread.sleep(forTimeInterval: interval)
            }
        }
        thread.name = "engine-rpc-heartbeat"
        thread.start()
    }

    private func startStatsPublisher() {
        let thread = Thread { [self] in
            while true {
                stopLock.lock(); let done = stopped; stopLock.unlock()
                if done { return }
                do { try sendStatsIfChanged() } catch { return }
                Thread.sleep(forTimeInterval: statsInterval)
            }
        }
        thread.name = "engine-rpc-stats"
        thread.start()
    }
}
