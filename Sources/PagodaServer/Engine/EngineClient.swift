import PagodaEngine

/// The engine side as the OpenAI serving path sees it: one engine core (`AsyncEngineClient`) or several
/// data-parallel ones behind one endpoint (`DataParallelEngineClient`). `generate` streams one request's
/// outputs; ending the stream early aborts the request.
public protocol EngineClient: AnyObject, Sendable {
    /// What every engine agreed on at start-up (model, block size, max model length, vocabulary, EOS ids).
    var handshake: EngineHandshake { get }
    /// Summed over the live engines.
    var stats: SchedulerStats { get }
    /// Nil while at least one engine serves; the reason once none does.
    var dead: String? { get }
    var numOpenRequests: Int { get }
    /// One entry per engine (data-parallel rank), for `/load`, `/health` and `/metrics`.
    var engines: [EngineStatus] { get }
    func generate(_ request: EngineRequest) -> AsyncThrowingStream<EngineOutput, Error>
    func abort(_ ids: [String])
    /// `handler(rank, stats)` runs whenever an engine publishes statistics.
    func onStats(_ handler: @escaping (Int, SchedulerStats) -> Void)
    /// Why the engines cannot be asked yet (still loading, `StartingEngineClient`), or nil once they have started.
    var starting: String? { get }
}

extension EngineClient {
    public var starting: String? { nil }
}

/// One engine core as the front-end knows it.
public struct EngineStatus: Sendable, Equatable {
    public var rank: Int
    /// Nil while it serves; why it is down otherwise.
    public var down: String?
    public var pid: Int
    public var numBlocks: Int
    public var stats: SchedulerStats
    public var numOpenRequests: Int
    public init(rank: Int, down: String?, pid: Int, numBlocks: Int, stats: SchedulerStats, numOpenRequests: Int) {
        self.rank = rank; self.down = down; self.pid = pid; self.numBlocks = numBlocks; self.stats = stats;
        self.numOpenRequests = numOpenRequests
    }
}
