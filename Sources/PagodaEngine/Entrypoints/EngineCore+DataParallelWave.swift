import Foundation
import PagodaModel

/// vLLM's DP wave protocol, for a MoE model under expert parallelism with DP > 1: every MoE layer is an
/// all-to-all over all DP engines, so the engines step together.
///
/// - Waves are numbered (`DataParallelWaveState`). A wave starts on an engine when a request arrives there
///   (tagged with the wave the front-end sent it in), or when the front-end announces that wave
///   (`announceWave(_:)`; the `start_wave N` utility call). An announcement of a wave that has already ended
///   here is ignored, so it never starts a wave on one engine alone. A request of an ended wave starts this
///   engine's current wave, which its published statistics show; the front-end then announces it to the others.
/// - In a wave every step is one forward on every engine: the scheduled batch, or a dummy step with no
///   tokens (`SchedulerOutput.expertParallelIdle`) that still serves the other engines' tokens routed to
///   this engine's experts.
/// - Every `waveCheckInterval` steps the engines all-gather (busy, wave number) over their control group;
///   when none is busy the agreed wave ends on all of them at the same step and each moves to the next number.
/// - Every wait is a collective with the communicator's timeout: a dead engine fails the step on every
///   other engine (its requests end with an error naming the rank) and the wave ends.
extension EngineCore {
    /// True while this engine is in a wave (only under DP lock-step).
    public var waveRunning: Bool { expertParallelStats?.inWave ?? false }

    /// A request arrived here, tagged with the wave it was sent in: starts a wave, or joins the running one.
    public func requestArrived(wave tag: Int?) {
        guard config.parallel.dataParallelLockStep, expertParallelStats != nil else { return }
        let effect = wave.requestArrived(wave: tag)
        if case .started(let selfStarted) = effect, selfStarted {
            epLogger.debug("wave \(wave.currentWave) started by a request of ended wave \(tag ?? -1)")
        }
        publishWave()
    }

    /// The front-end announced wave `number` (a request went to another engine in it).
    public func announceWave(_ number: Int) {
        guard config.parallel.dataParallelLockStep, expertParallelStats != nil else { return }
        if wave.announced(wave: number) == .ignoredStale {
            epLogger.debug("ignored the start of wave \(number): it ended here (now at wave \(wave.currentWave))")
        }
        publishWave()
    }

    /// Ends the wave after a failed step (the group is broken; the next request starts a new wave, whose
    /// first collective reports the dead peer again at once).
    public func abandonWave() {
        guard expertParallelStats != nil else { return }
        wave.abandon()
        publishWave()
    }

    /// One lock-step wave step: the scheduled batch, or a dummy step; then, every `waveCheckInterval`
    /// steps, the all-ranks check that may end the wave.
    public func waveStep() throws -> [EngineOutput] {
        guard let control = dataParallelControl, wave.running else { return try step() }
        var outputs: [EngineOutput] = []
        let scheduled = scheduler.hasUnfinishedRequests
        var s = scheduled ? scheduler.schedule() : SchedulerOutput()
        let idle = s.isEmpty
        if idle { s.expertParallelIdle = true }
        let runnerOutput = try executor.executeModel(s)
        noteExpertParallel(runnerOutput)
        if scheduled { outputs = scheduler.updateFromOutput(runnerOutput) }
        try flushFinishedIfIdle()
        expertParallelStats!.waveSteps += 1
        if idle { expertParallelStats!.dummySteps += 1 }
        if wave.stepped(checkInterval: waveCheckInterval) {
            // Each engine's (busy, wave number); the wave that ends is the one all agree on.
            let mine = wave.checkContribution(hasUnfinishedRequests: hasUnfinishedRequests)
            let n = config.parallel.dataParallelSize
            let (anyBusy, agreed) = try withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * n + 2) { buf in
                let p = buf.baseAddress!
                p[0] = mine.busy ? 1 : 0
                p[1] = Float(mine.wave)
                try control.allGather(p, count: 2, into: p + 2)
                var busy = false, highest = mine.wave
                for r in 0..<n {
                    busy = busy || p[2 + 2 * r] != 0
                    highest = max(highest, Int(p[3 + 2 * r]))
                }
                return (busy, highest)
            }
            if wave.checked(anyBusy: anyBusy, agreedWave: agreed) { expertParallelStats!.waves += 1 }
        }
        publishWave()
        return outputs
    }

    /// Copies the wave state into the published statistics.
    private func publishWave() {
        expertParallelStats?.inWave = wave.running
        expertParallelStats?.currentWave = wave.currentWave
        expertParallelStats?.staleWaveAnnouncements = wave.staleAnnouncements
    }

    /// The EPLB-style imbalance line (engine of DP rank 0 only: every engine holds the same group-wide report).
    func logExpertLoad(_ r: ExpertParallelStats) {
        guard config.parallel.dataParallelRank == 0, r.reportStep > 0 else { return }
        let perStep = r.steps > 0 ? r.allToAllSeconds / Double(r.steps) * 1000 : 0
        let waiting = r.steps > 0 ? r.countsExchangeSeconds / Double(r.steps) * 1000 : 0
        let hottest = r.tokensPerExpert.enumerated().max(by: { $0.element < $1.element })
        epLogger.info(
            "expert load at EP step \(r.reportStep): balancedness \(String(format: "%.3f", r.balancedness)) (mean/max tokens per EP rank over the last window), tokens per EP rank \(r.windowTokensPerRank), hottest expert \(hottest?.offset ?? 0) (\(hottest?.element ?? 0) tokens in all), all-to-all \(String(format: "%.3f", perStep)) ms/step, of which \(String(format: "%.3f", waiting)) ms in the counts exchange (mostly waiting for the slowest rank) (EP rank \(r.expertRank))"
        )
    }
}
