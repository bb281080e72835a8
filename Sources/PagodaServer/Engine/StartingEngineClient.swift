import Foundation
import PagodaEngine

/// The engine as the API server sees it while the engine cores are still loading: the HTTP port is already
/// open, and `/health`, `/ping` and every route that needs the engine answer 503 with OpenAI error JSON ("the
/// engine is starting"), instead of a connection that hangs or is refused. Once `ready(_:)` hands over the real
/// client, every call goes to it; statistics handlers registered before are attached then.
public final class StartingEngineClient: EngineClient, @unchecked Sendable {
    private let lock = NSLock()
    private var inner: EngineClient?
    private var pendingStatsHandlers: [(Int, SchedulerStats) -> Void] = []
    /// Said by `dead` (so by `/health` and each refused request) until `ready`.
    private let startingReason: String
    /// Stands for the handshake until the engines have sent theirs (nothing reads it before `ready`: every
    /// route that needs the engine checks `dead` first).
    private let placeholder: EngineHandshake

    public init(model: String, reason: String = "the engine is starting (loading the model); retry later") {
        startingReason = reason
        placeholder = EngineHandshake(model: model, numBlocks: 0, blockSize: 1, maxModelLen: 0, vocabSize: 0, eosTokenIds: [], pid: 0)
    }

    /// The engines are up: from now on every call goes to `client`.
    public func ready(_ client: EngineClient) {
        lock.lock()
        inner = client
        let handlers = pendingStatsHandlers
        pendingStatsHandlers = []
        lock.unlock()
        for h in handlers { client.onStats(h) }
    }

    private var current: EngineClient? { lock.lock(); defer { lock.unlock() }; return inner }

    /// Whether `ready` has been called.
    public var isReady: Bool { current != nil }

    public var handshake: EngineHandshake { current?.handshake ?? placeholder }
    public var stats: SchedulerStats { current?.stats ?? SchedulerStats() }
    public var starting: String? { current == nil ? startingReason : current?.starting }
    public var dead: String? {
        guard let c = current else { return startingReason }
        return c.dead
    }
    public var numOpenRequests: Int { current?.numOpenRequests ?? 0 }
    public var engines: [EngineStatus] { current?.engines ?? [] }

    public func generate(_ request: EngineRequest) -> AsyncThrowingStream<EngineOutput, Error> {
        if let c = current { return c.generate(request) }
        return AsyncThrowingStream { $0.finish(throwing: EngineError.engineDead(startingReason)) }
    }

    public func abort(_ ids: [String]) { current?.abort(ids) }

    public func onStats(_ handler: @escaping (Int, SchedulerStats) -> Void) {
        lock.lock()
        if let c = inner {
            lock.unlock()
            c.onStats(handler)
            return
        }
        pendingStatsHandlers.append(handler)
        lock.unlock()
    }
}
