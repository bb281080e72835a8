/// One engine's side of vLLM's numbered DP waves (a MoE model under expert parallelism with DP > 1), as a
/// pure state machine that `EngineCore+DataParallelWave.swift` drives.
///
/// Every wave has a number. The front-end tags each request with the wave it believed current when it sent
/// it and announces a wave to the other engines by number (`start_wave N`). An engine ignores the start of a
/// wave that has already ended here, so an announcement delayed past its wave's end never starts a wave on
/// one engine alone; a request tagged with an ended wave starts this engine's current wave instead, which
/// the engine publishes (`inWave` with `currentWave`) so the front-end announces it to the others. The
/// all-ranks check ends a wave by number: every engine then moves to the next.
public struct DataParallelWaveState: Sendable, Equatable {
    /// The wave this engine is in (running) or will start next (not running).
    public private(set) var currentWave = 0
    public private(set) var running = false
    /// Wave steps since this wave started (the all-ranks check runs every `checkInterval` of them).
    public private(set) var stepsInWave = 0
    /// A later wave announced while this one runs (defensive: the waves end together on every engine, so a
    /// later wave is not normally announced before that): it keeps this wave alive through the next check.
    public private(set) var announcedAhead: Int?
    /// Announcements ignored because their wave had already ended here (the race this numbering closes).
    public private(set) var staleAnnouncements = 0

    public init() {}

    /// What an event did to the engine.
    public enum Effect: Equatable, Sendable {
        /// A wave started here (`started(selfStarted: true)`: on a request of an ended wave; the front-end
        /// learns it from the published statistics and announces it to the other engines).
        case started(selfStarted: Bool)
        /// The running wave goes on (the request joins it, or the announcement is for it).
        case joined
        /// A stale announcement: its wave ended here already; nothing starts.
        case ignoredStale
        /// A later wave is announced while this one runs: it keeps this wave alive through the next check.
        case deferred
    }

    /// A request arrived, tagged with the wave it was sent in (nil: untagged, the current wave).
    public mutating func requestArrived(wave: Int?) -> Effect {
        let tag = wave ?? currentWave
        if running { return .joined }  // it makes this engine busy: the wave goes on
        // Not running: a request of a later wave moves this engine to it; one of an ended wave starts this
        // engine's current wave, which the others have not heard of yet.
        let selfStarted = tag < currentWave
        if tag > currentWave { currentWave = tag }
        start()
        return .started(selfStarted: selfStarted)
    }

    /// The front-end announced `start_wave(wave)`: a request went to another engine in that wave.
    public mutating func announced(wave: Int) -> Effect {
        if wave < currentWave {
            staleAnnouncements += 1
            return .ignoredStale
        }
        if running {
            if wave == currentWave { return .joined }
            announcedAhead = max(announcedAhead ?? wave, wave)
            return .deferred
        }
        currentWave = wave
        start()
        return .started(selfStarted: false)
    }

    /// One wave step ran; true when the all-ranks check is due (every `checkInterval` steps).
    public mutating func stepped(checkInterval: Int) -> Bool {
        stepsInWave += 1
        return stepsInWave % checkInterval == 0
    }

    /// What this engine puts into the all-ranks check: busy (unfinished requests or a wave announced ahead)
    /// and the number of the wave it is in.
    public func checkContribution(hasUnfinishedRequests: Bool) -> (busy: Bool, wave: Int) {
        (hasUnfinishedRequests || announcedAhead != nil, currentWave)
    }

    /// The all-ranks check's result: `anyBusy` over all engines, and the agreed wave (the highest any engine
    /// is in; they are equal unless something moved one ahead). Returns true when the wave ended: this engine
    /// then waits for wave `agreedWave + 1`.
    public mutating func checked(anyBusy: Bool, agreedWave: Int) -> Bool {
        if agreedWave > currentWave { currentWave = agreedWave }
        announcedAhead = nil  // it counted as busy in this check
        guard !anyBusy else { return false }
        running = false
        stepsInWave = 0
        currentWave += 1
        return true
    }

    /// A failed step broke the group: the wave ends here without a check (and its number is spent, so a late
    /// announcement of it starts nothing).
    public mutating func abandon() {
        if running { currentWave += 1 }
        running = false
        stepsInWave = 0
        announcedAhead = nil
    }

    private mutating func start() {
        running = true
        stepsInWave = 0
    }
}
