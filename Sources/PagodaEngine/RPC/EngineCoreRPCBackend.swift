/// What the engine RPC server drives on the engine-core side: an engine loop running on its own
/// thread (`EngineCoreThread` in the shipped binary; a test double in unit tests).
/// All methods may be called from the RPC reader thread while the loop runs.
public protocol EngineCoreRPCBackend: AnyObject {
    /// Starts the loop. `onOutputs` is called (from the loop's thread) with each step's outputs.
    func start(onOutputs: @escaping ([EngineOutput]) -> Void)
    /// Queues a request; throws (a message naming the problem) when the request is invalid.
    func addRequest(_ request: EngineRequest) throws
    func abortRequests(_ ids: [String])
    /// Current load (read by the stats publisher every few milliseconds).
    func currentStats() -> SchedulerStats
    /// A utility call; unknown methods throw.
    func utility(method: String, arguments: [String]) throws -> String
    /// Stops the loop and releases the model; the process exits afterwards.
    func shutdown()
    /// The prefix-cache changes since the last call (published after each statistics message).
    func takeKVEvents() -> KVCacheEvents
}

extension EngineCoreRPCBackend {
    /// A backend without a prefix cache to report.
    public func takeKVEvents() -> KVCacheEvents { KVCacheEvents() }
}

/// A utility method the backend does not know.
public struct UnknownUtilityMethod: Error, CustomStringConvertible {
    public let method: String
    public init(_ method: String) { self.method = method }
    public var description: String { "unknown engine utility method '\(method)'" }
}
