/// The front-end's half of vLLM's numbered DP waves (its DP coordinator's `current_wave` and
/// `engines_running`), a pure state machine: which wave a request is sent in, and when the other engines
/// must be told to start one.
///
/// - A request is tagged with the current wave. If no wave is believed running, the other engines are told
///   to start it (`start_wave N`) and it is believed running from then on.
/// - Each engine publishes its wave number and whether it is in a wave. A higher number means the waves up to
///   it ended (the engines end a wave together): it becomes current, running or not as that engine says. An
///   engine in a wave the front-end did not start (a request of an ended wave started it) makes the front-end
///   announce that wave to the others.
/// - Reports of older waves, and "not running" for the current one (stale: another engine may have started
///   it since), change nothing.
public struct DataParallelWaveCoordinator: Sendable, Equatable {
    public private(set) var currentWave = 0
    public private(set) var running = false

    public init() {}

    /// A request is about to be sent: the wave to tag it with, and whether to announce that wave to the other
    /// engines first.
    public mutating func send() -> (wave: Int, announce: Bool) {
        if running { return (currentWave, false) }
        running = true
        return (currentWave, true)
    }

    /// An engine published (`wave`, `inWave`); returns a wave to announce to every other engine, if any.
    public mutating func engineReported(wave: Int, inWave: Bool) -> Int? {
        if wave > currentWave {
            currentWave = wave
            running = inWave
            return inWave ? wave : nil
        }
        if wave == currentWave && inWave && !running {
            running = true
            return wave
        }
        return nil
    }
}
