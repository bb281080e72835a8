import Foundation
import PagodaEngine

/// Several engine cores (data-parallel ranks) behind one API endpoint — vLLM's internal load balancing
/// (`DPLBAsyncMPClient`). Each request goes to the rank `EngineSelector` picks from the engines' published
/// statistics and prefix-cache contents; its outputs stream back as from one engine.
///
/// Faults, beyond vLLM (whose server stops when one engine dies): a rank whose engine core goes away is
/// marked down and gets no new requests; a request on it that had not produced a token yet is sent again
/// to a live rank (the client never sees the loss), one that was already streaming ends with the engine's
/// error. The server stays up while one rank serves (`dead` is nil). A rank whose engine core is started
/// again joins back (`rejoin`) and gets traffic again.
///
/// Ranks: the clients are this server's local ranks, `firstRank ..< firstRank + count` in the deployment
/// (`firstRank` is 0 unless `--data-parallel-hybrid-lb` gives this server a slice); the selector works on
/// local indexes, everything a user sees (outputs, `engines`, statistics handlers, a pinned
/// `data_parallel_rank`) uses global ranks.
public final class DataParallelEngineClient: EngineClient, @unchecked Sendable {
    /// The client of each rank (replaced when a rank rejoins); read under `lock`.
    private var clients: [AsyncEngineClient]
    private var statsHandlers: [(Int, SchedulerStats) -> Void] = []
    private let lock = NSLock()
    private var selector: EngineSelector
    private var downReasons: [Int: String] = [:]
    private var requestRank: [String: Int] = [:]
    private var onRankDown: [(Int, String) -> Void] = []
    /// The global rank of local index 0.
    public let firstRank: Int
    /// DP lock-step (a MoE model under expert parallelism): requests carry numbered waves and the other engines
    /// are told to start a wave (`start_wave N`) when one begins (vLLM's coordinator; `DataParallelWaveCoordinator`).
    public var announcesWaves = false
    /// The waves as this front-end knows them (under `lock`).
    private var waves = DataParallelWaveCoordinator()

    /// `ranks[i]` must be data-parallel rank `firstRank + i`; all must serve the same model with the same block size.
    public init(ranks: [AsyncEngineClient], firstRank: Int = 0, policy: EngineSelector.Policy = .init()) throws {
        precondition(!ranks.isEmpty, "at least one engine")
        let first = ranks[0].handshake
        for (r, c) in ranks.enumerated() {
            let h = c.handshake
            guard h.dataParallelRank == firstRank + r else {
                throw DataParallelError.mismatch("engine \(firstRank + r) reports data-parallel rank \(h.dataParallelRank)")
            }
            guard h.modelIdentity == first.modelIdentity, h.blockSize == first.blockSize, h.maxModelLen == first.maxModelLen,
                h.vocabSize == first.vocabSize, h.eosTokenIds == first.eosTokenIds
            else {
                throw DataParallelError.mismatch(
                    "engine \(r) serves \(h.model) (block size \(h.blockSize), max model len \(h.maxModelLen), vocabulary \(h.vocabSize)); "
                        + "rank 0 serves \(first.model) (block size \(first.blockSize), max model len \(first.maxModelLen), vocabulary \(first.vocabSize))"
                )
            }
        }
        self.clients = ranks
        self.firstRank = firstRank
        selector = EngineSelector(numEngines: ranks.count, policy: policy)
    }

    public var numRanks: Int { clients.count }

    /// The client of local index `r` (global rank `firstRank + r`).
    public func client(_ r: Int) -> AsyncEngineClient { lock.lock(); defer { lock.unlock() }; return clients[r] }

    /// Wires the engines' statistics, prefix-cache changes and deaths into the selector, and starts them.
    public func start() {
        for (r, c) in clients.enumerated() { wire(c, rank: r) }
    }

    private func wire(_ c: AsyncEngineClient, rank r: Int) {
        c.onStats { [weak self] (s: SchedulerStats) in
            guard let self else { return }
            self.lock.lock()
            self.selector.update(rank: r, waiting: s.numWaiting, running: s.numRunning, received: s.numRequestsReceived)
            // An engine in a wave the others have not been told of (a request of an ended wave started it).
            let announce =
                self.announcesWaves ? s.expertParallel.flatMap { self.waves.engineReported(wave: $0.currentWave, inWave: $0.inWave) } : nil
            let handlers = self.statsHandlers
            self.lock.unlock()
            if let w = announce { self.announceWave(w, except: r) }
            for h in handlers { h(self.firstRank + r, s) }
        }
        c.onKVEvents { [weak self] e in
            guard let self else { return }
            self.lock.lock(); self.selector.apply(rank: r, events: e); self.lock.unlock()
        }
        c.onDeath { [weak c, weak self] reason in
            guard let self, let c else { return }
            self.rankDied(r, client: c, reason)
        }
        c.start()
    }

    /// Local index `r` is back (its engine core was started again): its new client replaces the lost one and the
    /// rank takes requests again, starting with an empty prefix cache. Refused when the engine serves
    /// something else than the others, or when the rank is not down.
    public func rejoin(rank r: Int, client c: AsyncEngineClient) throws {
        let h = c.handshake, first = handshake
        guard h.dataParallelRank == firstRank + r, h.modelIdentity == first.modelIdentity, h.blockSize == first.blockSize,
            h.maxModelLen == first.maxModelLen, h.vocabSize == first.vocabSize
        else {
            throw DataParallelError.mismatch("rank \(firstRank + r) came back as rank \(h.dataParallelRank) serving \(h.model)")
        }
        lock.lock()
        guard downReasons[r] != nil else { lock.unlock(); throw DataParallelError.mismatch("rank \(firstRank + r) is not down") }
        clients[r] = c
        downReasons[r] = nil
        selector.setAlive(rank: r, true)
        lock.unlock()
        wire(c, rank: r)
    }

    /// Whether the rank with local index `r` is serving (joined and not down).
    public func isUp(_ r: Int) -> Bool { lock.lock(); defer { lock.unlock() }; return downReasons[r] == nil }

    /// `handler(index, reason)` runs once per rank that goes down, with its local index (global rank: `firstRank + index`).
    public func onRankDown(_ handler: @escaping (Int, String) -> Void) {
        lock.lock(); onRankDown.append(handler); lock.unlock()
    }

    private func rankDied(_ r: Int, client c: AsyncEngineClient, _ reason: String) {
        lock.lock()
        guard clients[r] === c else { lock.unlock(); return }  // an old client of a rank that rejoined
        selector.setAlive(rank: r, false)
        downReasons[r] = reason
        let handlers = onRankDown
        lock.unlock()
        for h in handlers { h(r, reason) }
    }

    // MARK: EngineClient

    public var handshake: EngineHandshake { client(0).handshake }

    public var stats: SchedulerStats {
        var total = SchedulerStats()
        var usage = 0.0
        var live = 0
        lock.lock(); let all = clients; lock.unlock()
        for c in all where c.dead == nil {
            let s = c.stats
            total.numRunning += s.numRunning; total.numWaiting += s.numWaiting
            total.prefixCacheQueries += s.prefixCacheQueries; total.prefixCacheHits += s.prefixCacheHits
            total.numPreemptions += s.numPreemptions; total.numRequestsReceived += s.numRequestsReceived
            usage += s.kvCacheUsage
            live += 1
        }
        total.kvCacheUsage = live > 0 ? usage / Double(live) : 0
        return total
    }

    public var dead: String? {
        lock.lock(); defer { lock.unlock() }
        guard downReasons.count == clients.count else { return nil }
        return downReasons.keys.sorted().map { "rank \(firstRank + $0): \(downReasons[$0]!)" }.joined(separator: "; ")
    }

    public var numOpenRequests: Int { lock.lock(); defer { lock.unlock() }; return requestRank.count }

    public var engines: [EngineStatus] {
        lock.lock(); let down = downReasons, all = clients; lock.unlock()
        return all.enumerated().map { r, c in
            EngineStatus(
                rank: firstRank + r, down: down[r], pid: c.handshake.pid, numBlocks: c.handshake.numBlocks, stats: c.stats,
                numOpenRequests: c.numOpenRequests)
        }
    }

    public func onStats(_ handler: @escaping (Int, SchedulerStats) -> Void) {
        lock.lock(); statsHandlers.append(handler); lock.unlock()
    }

    public func abort(_ ids: [String]) {
        lock.lock()
        let targets = ids.map { ($0, requestRank[$0]) }
        lock.unlock()
        for (id, r) in targets { if let r { client(r).abort([id]) } }
    }

    /// The full blocks of `prompt` as the engines hash them for prefix caching; none when the routing does not
    /// look at prefixes.
    func blockHashes(_ prompt: [Int]) -> [UInt64] {
        lock.lock(); let prefixAware = selector.policy.prefixAware; lock.unlock()
        guard prefixAware else { return [] }
        let bs = handshake.blockSize
        var out: [UInt64] = []
        out.reserveCapacity(prompt.count / bs)
        var i = 0
        while i + bs <= prompt.count {
            out.append(BlockHash.chainValue(parent: out.last, tokenIds: prompt[i..<(i + bs)]))
            i += bs
        }
        return out
    }

    private func choose(_ request: EngineRequest, hashes: [UInt64]) -> Result<Int, EngineSelector.Refusal> {
        lock.lock(); defer { lock.unlock() }
        // A pinned rank is global; the selector counts from this server's first rank.
        let pinned = request.dataParallelRank.map { $0 - firstRank }
        if let p = pinned, !(0..<clients.count).contains(p) {
            return .failure(.pinnedRankOutOfRange(request.dataParallelRank!, size: clients.count))
        }
        let choice = selector.select(blockHashes: hashes, pinnedRank: pinned)
        if case .success(let r) = choice { requestRank[request.requestId] = r }
        return choice
    }

    /// Tells every live engine but `rank` to start wave `number` (DP lock-step).
    private func announceWave(_ number: Int, except rank: Int) {
        lock.lock()
        let others = clients.enumerated().filter { $0.offset != rank && downReasons[$0.offset] == nil }.map(\.element)
        lock.unlock()
        for c in others where c.dead == nil { c.rpc.utility(method: "start_wave", arguments: [String(number)]) { _ in } }
    }

    /// The request as sent in the current wave, announced to the other engines when none is running (DP lock-step).
    private func tagWave(_ request: EngineRequest, rank: Int) -> EngineRequest {
        guard announcesWaves else { return request }
        lock.lock()
        let (wave, announce) = waves.send()
        lock.unlock()
        if announce { announceWave(wave, except: rank) }
        var tagged = request
        tagged.wave = wave
        return tagged
    }

    public func generate(_ request: EngineRequest) -> AsyncThrowingStream<EngineOutput, Error> {
        let hashes = blockHashes(request.promptTokenIds)
        let id = request.requestId
        return AsyncThrowingStream { continuation in
            let task = Task { [self] in
                var attempts = 0
                while true {
                    attempts += 1
                    let rank: Int
                    switch choose(request, hashes: hashes) {
                    case .success(let r): rank = r
                    case .failure(let refusal):
                        continuation.finish(throwing: refusal.asError(dead: dead, firstRank: firstRank))
                        return
                    }
                    var produced = false
                    defer { lock.lock(); selector.finished(rank: rank, blockHashes: hashes); lock.unlock() }
                    let sent = tagWave(request, rank: rank)
                    do {
                        for try await var output in client(rank).generate(sent) {
                            if !output.newTokenIds.isEmpty { produced = true }
                            output.dataParallelRank = firstRank + rank
                            continuation.yield(output)
                        }
                        continuation.finish()
                        return
                    } catch let e as EngineDeadError {
                        // The rank is gone (its death handler may not have run yet): no new requests there.
                        lock.lock(); selector.setAlive(rank: rank, false); lock.unlock()
                        // Not started on that rank: send it to a live one (each rank at most once).
                        if produced || attempts >= numRanks || Task.isCancelled {
                            // The error names the rank that was lost (several serve behind this endpoint).
                            let named =
                                e.reason.contains("rank \(firstRank + rank)")
                                ? e.reason : "data-parallel rank \(firstRank + rank): \(e.reason)"
                            continuation.finish(throwing: EngineDeadError(reason: numRanks > 1 ? named : e.reason))
                            return
                        }
                    } catch {
                        continuation.finish(throwing: error)
                        return
                    }
                }
            }
            continuation.onTermination = { [weak self] _ in
                task.cancel()
                guard let self else { return }
                self.lock.lock(); self.requestRank[id] = nil; self.lock.unlock()
            }
        }
    }
}

/// Why the data-parallel front-end cannot serve (a request, or at all).
public enum DataParallelError: Error, CustomStringConvertible, Equatable {
    /// The engines disagree on what they serve.
    case mismatch(String)
    /// A request pinned a rank that does not exist (OpenAI: 400).
    case badRank(String)
    /// A request pinned a rank that exists but is down (OpenAI: 503, the server's condition, not the request's).
    case rankDown(String)

    public var description: String {
        switch self {
        case .mismatch(let s): return "data-parallel engines differ: \(s)"
        case .badRank(let s), .rankDown(let s): return s
        }
    }
}

extension EngineSelector.Refusal {
    /// `firstRank`: the global rank of the selector's index 0 (out-of-range ranks arrive global already).
    func asError(dead: String?, firstRank: Int = 0) -> Error {
        switch self {
        case .noLiveEngine: return EngineDeadError(reason: dead ?? "no data-parallel rank is serving")
        case .pinnedRankOutOfRange(let r, let size):
            return DataParallelError.badRank("data_parallel_rank \(r) is out of range (\(firstRank)..<\(firstRank + size) are served here)")
        case .pinnedRankDown(let r): return DataParallelError.rankDown("data_parallel_rank \(firstRank + r) is not serving")
        }
    }
}
