import Foundation
import PagodaModel

/// vLLM's DP wave protocol, for a MoE model under expert parallelism with DP > 1: every MoE layer is an
/// all-to-all over all DP engines, so the engines step together.
///
/// - A wave starts on an engine when a request arrives there, or when the front-end announces a request
///   sent to another engine (`startWave()`; the front-end's `start_wave` utility call). An announcement
///   that arrives during a wave keeps the wave alive through the next check.
/// - In a wave every step is one forward on every engine: the scheduled batch, or a dummy step with no
///   tokens (`SchedulerOutput.expertParallelIdle`) that still serves the other engines' tokens routed to
///   this engine's experts.
/// - Every `waveCheckInterval` steps the engines all-reduce "unfinished requests or an announcement
///   pending" over their control group; at zero the wave ends on all of them at the same step.
/// - Every wait is a collective with the communicator's timeout: a dead engine fails the step on every
///   other engine (its requests end with an error naming the rank) and the wave ends.
extension EngineCore {
    /// True while this engine is in a wave (only under DP lock-step).
    public var waveRunning: Bool { expertParallelStats?.inWave ?? false }

    /// A request arrived here or on another engine: starts a wave, or keeps the running one alive.
    public func startWave() {
        guard config.parallel.dataParallelLockStep, expertParallelStats != nil else { return }
        if expertParallelStats!.inWave {
            waveStartPending = true
        } else {
            expertParallelStats!.inWave = true
            stepsInWave = 0
        }
    }

    /// Ends the wave after a failed step (the group is broken; the next request starts a new wave, whose
    /// first collective reports the dead peer again at once).
    public func abandonWave() {
        guard expertParallelStats != nil else { return }
        expertParallelStats!.inWave = false
        waveStartPending = false
        stepsInWave = 0
    }

    /// One lock-step wave step: the scheduled batch, or a dummy step; then, every `waveCheckInterval`
    /// steps, the all-ranks check that may end the wave.
    public func waveStep() throws -> [EngineOutput] {
        guard let control = dataParallelControl, expertParallelStats?.inWave == true else { return try step() }
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
        stepsInWave += 1
        if stepsInWave % waveCheckInterval == 0 {
            var busy: Float = hasUnfinishedRequests || waveStartPending ? 1 : 0
            waveStartPending = false
            try control.allReduceSum(&busy, count: 1)
            if busy == 0 {
                expertParallelStats!.inWave = false
                expertParallelStats!.waves += 1
                stepsInWave = 0
            }
        }
        return outputs
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
