import CPagodaSystem
import Foundation

/// Runs an `EngineCore`'s loop on one dedicated thread (vLLM's `EngineCoreProc` busy loop, in-process).
///
/// Any thread may add or abort requests; they are queued and applied by the loop between steps.
/// Outputs of each step go to `onOutputs` on the engine thread (keep it short: hand them off).
/// The loop sleeps on a condition variable while there is nothing to do.
public final class EngineCoreThread: @unchecked Sendable {
    public let core: EngineCore
    private var onOutputs: ([EngineOutput]) -> Void = { _ in }
    private let cond = NSCondition()
    // Guarded by `cond`:
    private var pendingAdds: [EngineRequest] = []
    private var pendingAborts: [String] = []
    private var pendingCalls: [() -> Void] = []
    /// Front-end announcements of numbered waves (a request sent to another DP engine; DP lock-step only).
    private var pendingWaveStarts: [Int] = []
    private var stopping = false
    private var latestStats = SchedulerStats()
    private var pendingKVEvents = KVCacheEvents()
    private var thread: Thread?
    private let finished = DispatchSemaphore(value: 0)
    /// Called once, on the engine thread, after a step failed in a way no later step recovers from (a worker
    /// process of the multiprocess executor died or failed) and that step's requests were failed; the loop
    /// then stops. `pagoda engine-core` exits, so that its supervisor restarts it (vLLM's engine core dies
    /// with its workers too). Set before `start`.
    public var onUnrecoverableError: ((String) -> Void)?

    /// `publishKVEvents`: record the prefix-cache changes for `takeKVEvents()` (the RPC server publishes them).
    public init(core: EngineCore, publishKVEvents: Bool = false) {
        self.core = core
        core.recordsKVEvents = publishKVEvents
    }

    /// The prefix-cache changes of the steps since the last call.
    public func takeKVEvents() -> KVCacheEvents {
        cond.lock(); defer { cond.unlock() }
        defer { pendingKVEvents = KVCacheEvents() }
        return pendingKVEvents
    }

    /// Starts the loop. `onOutputs` receives every step's outputs (on the engine thread), including
    /// `.error` finishes for requests the engine rejected after queueing or that a failed step ended.
    public func start(onOutputs: @escaping ([EngineOutput]) -> Void) {
        self.onOutputs = onOutputs
        // A data-parallel engine running the model in this process: its loop thread (the forward pass's
        // calling thread) takes the first CPU of the engine's share; the pool's threads take the rest.
        let p = core.config.parallel
        let pinTo = p.executorBackend == .uni ? p.engineCPUs?.first : nil
        let t = Thread { [self] in
            if let cpu = pinTo { _ = pagoda_pin_thread_to_cpu(Int32(cpu)) }
            loop()
        }
        t.name = "pagoda-engine-core"
        t.stackSize = 8 << 20
        thread = t
        t.start()
    }

    /// Validates on the calling thread (throws for a bad request), then queues it.
    public func addRequest(_ r: EngineRequest) throws {
        try core.validate(r)
        cond.lock(); defer { cond.unlock() }
        if stopping { throw EngineError.engineDead("shut down") }
        pendingAdds.append(r)
        cond.signal()
    }

    /// The front-end sent a request to another data-parallel engine in wave `number`: under DP lock-step this
    /// engine must step in that wave too, unless it has already ended here (`DataParallelWaveState`).
    public func startWave(_ number: Int) {
        cond.lock(); defer { cond.unlock() }
        pendingWaveStarts.append(number)
        cond.signal()
    }

    public func abortRequests(_ ids: [String]) {
        cond.lock(); defer { cond.unlock() }
        pendingAborts.append(contentsOf: ids)
        cond.signal()
    }

    /// The statistics after the latest step.
    public var stats: SchedulerStats {
        cond.lock(); defer { cond.unlock() }
        return latestStats
    }

    /// Runs `body` on the engine thread between steps and returns its result (utility calls).
    public func call<T>(_ body: @escaping (EngineCore) throws -> T) throws -> T {
        var result: Result<T, Error>? = nil
        let done = DispatchSemaphore(value: 0)
        cond.lock()
        if stopping { cond.unlock(); throw EngineError.engineDead("shut down") }
        pendingCalls.append { [core] in
            result = Result { try body(core) }
            done.signal()
        }
        cond.signal()
        cond.unlock()
        done.wait()
        return try result!.get()
    }

    /// Stops the loop after the current step and waits for it; unfinished requests are aborted.
    public func shutdown() {
        cond.lock()
        let wasRunning = thread != nil && !stopping
        stopping = true
        cond.signal()
        cond.unlock()
        if wasRunning { finished.wait() }
        core.shutdown()
    }

    private func loop() {
        let lockStep = core.config.parallel.dataParallelLockStep
        while true {
            cond.lock()
            while pendingAdds.isEmpty && pendingAborts.isEmpty && pendingCalls.isEmpty && pendingWaveStarts.isEmpty && !stopping
                && !(lockStep ? core.waveRunning : core.hasUnfinishedRequests)
            {
                latestStats = core.stats
                cond.wait()
            }
            let adds = pendingAdds, aborts = pendingAborts, calls = pendingCalls, stop = stopping
            let waveStarts = pendingWaveStarts
            pendingAdds.removeAll(); pendingAborts.removeAll(); pendingCalls.removeAll(); pendingWaveStarts.removeAll()
            cond.unlock()
            for c in calls { c() }
            if stop {
                core.abortRequests(core.scheduler.unfinishedRequestIds)
                finished.signal()
                return
            }
            var outputs: [EngineOutput] = []
            if !aborts.isEmpty { core.abortRequests(aborts) }
            for r in adds {
                do { try core.addRequest(r) } catch {
                    outputs.append(
                        EngineOutput(
                            requestId: r.requestId, newTokenIds: [], finishReason: .error,
                            error: "\(error)"))
                }
            }
            var unrecoverable: String?
            do {
                if lockStep {
                    let wasRunning = core.waveRunning
                    for n in waveStarts { core.announceWave(n) }
                    for r in adds { core.requestArrived(wave: r.wave) }
                    if core.waveRunning && !wasRunning {
                        // A wave that starts is published before its first all-to-all, which waits for the others:
                        // if a request of an ended wave started it, the front-end announces it to them.
                        let s = core.stats
                        cond.lock(); latestStats = s; cond.unlock()
                    }
                    if core.waveRunning { outputs += try core.waveStep() }
                } else {
                    outputs += try core.step()
                }
            } catch {
                if lockStep {
                    core.abandonWave()
                    outputs += core.failAllRequests(
                        "expert-parallel wave failed on data-parallel rank \(core.config.parallel.dataParallelRank): \(error)")
                } else {
                    outputs += core.failAllRequests("engine step failed: \(error)")
                }
                if error is MultiprocExecutorError { unrecoverable = "\(error)" }
            }
            let s = core.stats
            let events = core.takeKVEvents()  // empty unless the core records them
            cond.lock(); latestStats = s; if !events.isEmpty { pendingKVEvents.append(events) }; cond.unlock()
            if !outputs.isEmpty { onOutputs(outputs) }
            if let why = unrecoverable, let handler = onUnrecoverableError {
                handler(why)
                return
            }
        }
    }
}
