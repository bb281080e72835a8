import Foundation

/// `--distributed-executor-backend ray` (vLLM's Ray executor): the multiprocess executor with its TP × PP
/// workers placed by Ray. The engine reserves one placement group of one bundle per worker (or uses the one a
/// Ray data-parallel rank was given), and each worker is started by `pagoda_ray.py exec` — the launch prefix
/// of `MultiprocExecutor` — in an actor on its bundle's node, reached there over TCP. The exec helper lives as
/// long as its worker, so a worker (or actor, or node) that dies is a dead worker rank as with `mp`.
/// A worker may be on another node, so the control channel is TCP: the engine listens on its own node's Ray
/// address (`ParallelConfig.workerControlHost`), the exec helper hands the secret to the worker's stdin, and the
/// worker proves it before any frame (`MultiprocTCPControl`).
public final class RayExecutor: Executor {
    private let inner: MultiprocExecutor
    /// The session holding this engine's own placement group (nil when the group is a data-parallel rank's).
    private let session: RaySession?

    public init(config: EngineConfig) throws {
        var c = config
        let p = config.parallel
        let settings = p.ray ?? RaySettings()
        let workers = p.worldSize
        let group: String
        let hosts: [String]
        let engineHost: String
        var own: RaySession?
        if let pg = settings.placementGroup, let h = settings.bundleHosts, h.count == workers {
            group = pg
            hosts = h
            engineHost = settings.engineHost ?? h[0]
        } else {
            let s = try RaySession(settings: settings)
            do {
                let placed = try s.place(
                    job: "tp\(getpid())", ranks: 1, firstRank: p.dataParallelRank, localRanks: nil, bundlesPerRank: workers,
                    bundle: settings.bundle, strategy: .span, timeoutSeconds: settings.placementTimeoutSeconds)
                guard let mine = placed.first, mine.nodeIPs.count == workers else {
                    throw RayError.helper("the helper placed \(placed) for \(workers) workers")
                }
                group = mine.placementGroup
                hosts = mine.nodeIPs
                engineHost = s.headIP
            } catch {
                s.shutdown()
                throw error
            }
            own = s
        }
        c.parallel.workerHosts = hosts
        c.parallel.transport = .tcp
        c.parallel.workerControlHost = engineHost
        do {
            c.parallel.workerLaunchPrefix = try settings.helperCommand([
                "exec", "--placement-group", group, "--bundle", "{rank}", "--stdin-to-process", "--",
            ])
            inner = try MultiprocExecutor(config: c)
        } catch {
            own?.shutdown()
            throw error
        }
        session = own
    }

    public var modelInfo: ModelInfo { inner.modelInfo }
    public var maxConcurrentBatches: Int { inner.maxConcurrentBatches }
    public func determineNumAvailableBlocks(_ cache: CacheConfig) throws -> Int { try inner.determineNumAvailableBlocks(cache) }
    public func initializeCache(numBlocks: Int) throws { try inner.initializeCache(numBlocks: numBlocks) }
    public func executeModel(_ schedulerOutput: SchedulerOutput) throws -> ModelRunnerOutput { try inner.executeModel(schedulerOutput) }
    public func submitModel(_ schedulerOutput: SchedulerOutput) throws -> ModelRunnerFuture { try inner.submitModel(schedulerOutput) }

    public func shutdown() {
        inner.shutdown()
        session?.shutdown()
    }
}
