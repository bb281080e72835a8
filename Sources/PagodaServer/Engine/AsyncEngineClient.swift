import Foundation
import PagodaEngine

/// The engine core as HTTP handlers see it (vLLM's `AsyncLLM` output side): `generate` returns a
/// stream of one request's outputs; ending the stream early aborts the request in the engine.
/// When the engine core goes away every open stream ends with `EngineDeadError`.
public final class AsyncEngineClient: EngineClient, @unchecked Sendable {
    public let rpc: EngineCoreRPCClient
    private let lock = NSLock()
    private var streams: [String: AsyncThrowingStream<EngineOutput, Error>.Continuation] = [:]
    private var deathReason: String?
    private var deathHandlers: [(String) -> Void] = []
    private var statsHandlers: [(SchedulerStats) -> Void] = []
    private var kvEventHandlers: [(KVCacheEvents) -> Void] = []

    /// Heartbeats and a silence timeout for an engine core on another node (nil: a local socket, whose close
    /// is seen at once).
    private let liveness: EngineRPCLiveness?

    public init(rpc: EngineCoreRPCClient, liveness: EngineRPCLiveness? = nil) {
        self.rpc = rpc
        self.liveness = liveness
    }

    /// Begins delivering outputs (call once, after registering handlers you need from the start).
    public func start() {
        rpc.start(
            onOutputs: { [weak self] outputs in self?.deliver(outputs) },
            onStats: { [weak self] s in
                guard let self else { return }
                self.lock.lock(); let hs = self.statsHandlers; self.lock.unlock()
                for h in hs { h(s) }
            },
            onKVEvents: { [weak self] e in
                guard let self else { return }
                self.lock.lock(); let hs = self.kvEventHandlers; self.lock.unlock()
                for h in hs { h(e) }
            },
            liveness: liveness,
            onClosed: { [weak self] reason in self?.engineDied(reason) })
    }

    public var handshake: EngineHandshake { rpc.handshakeInfo }
    public var stats: SchedulerStats { rpc.stats }
    /// Nil while the engine core is alive.
    public var dead: String? { lock.lock(); defer { lock.unlock() }; return deathReason }
    public var numOpenRequests: Int { lock.lock(); defer { lock.unlock() }; return streams.count }

    /// `handler` runs once, on an RPC thread, when the engine core goes away (immediately if it already has).
    public func onDeath(_ handler: @escaping (String) -> Void) {
        lock.lock()
        if let r = deathReason { lock.unlock(); handler(r); return }
        deathHandlers.append(handler)
        lock.unlock()
    }

    /// `handler` runs on an RPC thread whenever the engine core publishes statistics.
    public func onStats(_ handler: @escaping (SchedulerStats) -> Void) {
        lock.lock(); statsHandlers.append(handler); lock.unlock()
    }

    /// `EngineClient`: statistics labelled with this engine's data-parallel rank.
    public func onStats(_ handler: @escaping (Int, SchedulerStats) -> Void) {
        let rank = handshake.dataParallelRank
        onStats { (s: SchedulerStats) in handler(rank, s) }
    }

    public var engines: [EngineStatus] {
        [
            EngineStatus(
                rank: handshake.dataParallelRank, down: dead, pid: handshake.pid, numBlocks: handshake.numBlocks, stats: stats,
                numOpenRequests: numOpenRequests)
        ]
    }

    /// `handler` runs on the RPC reader thread for every prefix-cache change the engine publishes.
    public func onKVEvents(_ handler: @escaping (KVCacheEvents) -> Void) {
        lock.lock(); kvEventHandlers.append(handler); lock.unlock()
    }

    /// Sends `request` and streams its outputs. The stream finishes after the output carrying a
    /// `finishReason`; cancelling or dropping it first aborts the request.
    public func generate(_ request: EngineRequest) -> AsyncThrowingStream<EngineOutput, Error> {
        let id = request.requestId
        return AsyncThrowingStream { continuation in
            lock.lock()
            if let reason = deathReason {
                lock.unlock()
                continuation.finish(throwing: EngineDeadError(reason: reason))
                return
            }
            streams[id] = continuation
            lock.unlock()
            continuation.onTermination = { [weak self] termination in
                guard let self else { return }
                self.lock.lock()
                let wasOpen = self.streams.removeValue(forKey: id) != nil
                self.lock.unlock()
                // Finished by the engine: nothing to do. Cancelled or dropped by the consumer: abort.
                if wasOpen, case .cancelled = termination { self.rpc.abortRequests([id]) }
            }
            do {
                try rpc.addRequest(request)
            } catch {
                lock.lock(); let c = streams.removeValue(forKey: id); lock.unlock()
                c?.finish(throwing: EngineDeadError(reason: dead ?? "\(error)"))
            }
        }
    }

    /// Aborts requests whose streams are still open (stop string matched, client gone).
    public func abort(_ ids: [String]) {
        lock.lock()
        let open = ids.compactMap { streams.removeValue(forKey: $0) }
        lock.unlock()
        rpc.abortRequests(ids)
        for c in open { c.finish() }
    }

    private func deliver(_ outputs: [EngineOutput]) {
        for output in outputs {
            lock.lock()
            let c = output.finishReason == nil ? streams[output.requestId] : streams.removeValue(forKey: output.requestId)
            lock.unlock()
            guard let c else { continue }  // aborted already
            c.yield(output)
            if output.finishReason != nil { c.finish() }
        }
    }

    private func engineDied(_ reason: String) {
        lock.lock()
        deathReason = reason
        let open = streams; streams = [:]
        let handlers = deathHandlers; deathHandlers = []
        lock.unlock()
        for (_, c) in open { c.finish(throwing: EngineDeadError(reason: reason)) }
        for h in handlers { h(reason) }
    }
}

/// The engine core process is gone; requests in flight fail with this.
public struct EngineDeadError: Error, CustomStringConvertible {
    public let reason: String
    public var description: String { "engine core is not running: \(reason)" }
}
