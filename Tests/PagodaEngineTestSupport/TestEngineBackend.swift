import Foundation
import PagodaEngine

/// A test double of the engine loop for the RPC and server tests: every request produces the tokens
/// `promptTokenIds.last + 1, + 2, ...` one per step (a step every `stepInterval`), up to
/// `maxTokens`, then finishes with `.length`. Aborted requests stop producing output.
public final class TestEngineBackend: EngineCoreRPCBackend, @unchecked Sendable {
    private let lock = NSLock()
    private var running: [String: (request: EngineRequest, produced: Int)] = [:]
    private var stopped = false
    private var abortedIds: [String] = []
    private var didShutDown = false
    private var added: [EngineRequest] = []
    public let stepInterval: Double

    public init(stepInterval: Double = 0.002) { self.stepInterval = stepInterval }

    public func start(onOutputs: @escaping ([EngineOutput]) -> Void) {
        let t = Thread { [self] in
            while true {
                lock.lock()
                if stopped { lock.unlock(); return }
                var outputs: [EngineOutput] = []
                for (id, state) in running {
                    let next = (state.request.promptTokenIds.last ?? 0) + state.produced + 1
                    let produced = state.produced + 1
                    let done = produced >= state.request.sampling.maxTokens
                    var lp: [TokenLogprob]? = nil
                    if let k = state.request.sampling.logprobs {
                        lp = [
                            TokenLogprob(
                                tokenId: next, logprob: -0.5,
                                top: (0..<k).map { TopLogprob(tokenId: next + $0, logprob: -0.5 - Float($0)) })
                        ]
                    }
                    outputs.append(EngineOutput(requestId: id, newTokenIds: [next], newLogprobs: lp, finishReason: done ? .length : nil))
                    if done { running[id] = nil } else { running[id] = (state.request, produced) }
                }
                lock.unlock()
                if !outputs.isEmpty { onOutputs(outputs) }
                Thread.sleep(forTimeInterval: stepInterval)
            }
        }
        t.start()
    }

    public func addRequest(_ request: EngineRequest) throws {
        if request.promptTokenIds.isEmpty { throw TestBackendError(message: "prompt is empty") }
        lock.lock(); running[request.requestId] = (request, 0); added.append(request); lock.unlock()
    }

    /// Every request added so far, in order.
    public var addedRequests: [EngineRequest] { lock.lock(); defer { lock.unlock() }; return added }

    public func abortRequests(_ ids: [String]) {
        lock.lock(); for id in ids { running[id] = nil }; abortedIds += ids; lock.unlock()
    }

    public func currentStats() -> SchedulerStats {
        lock.lock(); defer { lock.unlock() }
        var s = SchedulerStats()
        s.numRunning = running.count
        s.kvCacheUsage = Double(running.count) / 100
        return s
    }

    public func utility(method: String, arguments: [String]) throws -> String {
        switch method {
        case "echo": return arguments.joined(separator: " ")
        default: throw UnknownUtilityMethod(method)
        }
    }

    public func shutdown() {
        lock.lock(); stopped = true; didShutDown = true; lock.unlock()
    }

    public var numRunning: Int { lock.lock(); defer { lock.unlock() }; return running.count }
    public var aborted: [String] { lock.lock(); defer { lock.unlock() }; return abortedIds }
    public var shutDown: Bool { lock.lock(); defer { lock.unlock() }; return didShutDown }
}

public struct TestBackendError: Error, CustomStringConvertible {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

extension TestEngineBackend {
    /// Serves this backend behind a real engine RPC server on one end of a socket pair, on its own thread,
    /// and returns the front-end's client (handshake done) and the engine's end (close it to "kill" the engine).
    public func serveOverRPC(_ handshake: EngineHandshake, statsInterval: Double = 0.005) throws
        -> (client: EngineCoreRPCClient, engineEnd: EngineRPCConnection)
    {
        let (front, engine) = try EngineRPCConnection.pair()
        let server = EngineCoreRPCServer(connection: engine, handshake: handshake, backend: self, statsInterval: statsInterval)
        Thread { _ = server.run() }.start()
        return (try EngineCoreRPCClient(connection: front), engine)
    }
}
