import PagodaEngine
import XCTest

@testable import PagodaServer

/// The numbered DP waves (`DataParallelWaveState` on each engine, `DataParallelWaveCoordinator` in the
/// front-end): a stale `start_wave` starts no wave on one engine alone, a request of an ended wave starts the
/// engine's current one and the front-end announces it to the others; and, over random interleavings of the
/// messages of a two- and a three-engine deployment, every wave that starts is joined by all engines and ends.
final class DataParallelWaveTests: XCTestCase {
    func testAStaleAnnouncementStartsNoWave() {
        var b = DataParallelWaveState()
        XCTAssertEqual(b.requestArrived(wave: 0), .started(selfStarted: false))
        XCTAssertEqual(b.checkContribution(hasUnfinishedRequests: false).busy, false)
        XCTAssertTrue(b.checked(anyBusy: false, agreedWave: 0))
        XCTAssertEqual(b.currentWave, 1)
        XCTAssertFalse(b.running)
        // The front-end's announcement of wave 0 (for a request another engine ran in wave 0) lands late.
        XCTAssertEqual(b.announced(wave: 0), .ignoredStale)
        XCTAssertFalse(b.running, "a late start_wave must not start a wave on this engine alone")
        XCTAssertEqual(b.staleAnnouncements, 1)
        // The announcement of the current wave starts it; a repeat during it changes nothing.
        XCTAssertEqual(b.announced(wave: 1), .started(selfStarted: false))
        XCTAssertEqual(b.announced(wave: 1), .joined)
        XCTAssertEqual(b.currentWave, 1)
    }

    func testARequestOfAnEndedWaveStartsTheCurrentOneAndTheFrontEndAnnouncesIt() {
        var front = DataParallelWaveCoordinator()
        var a = DataParallelWaveState(), b = DataParallelWaveState()
        // Request 1 goes to A in wave 0: B is told to start wave 0.
        XCTAssertEqual(front.send().wave, 0)
        XCTAssertEqual(front.running, true)
        _ = a.requestArrived(wave: 0)
        _ = b.announced(wave: 0)
        // Wave 0 ends on both (the check, at the same step).
        XCTAssertTrue(a.checked(anyBusy: false, agreedWave: 0))
        XCTAssertTrue(b.checked(anyBusy: false, agreedWave: 0))
        // Before their reports arrive the front-end still believes wave 0 runs: request 2 is tagged 0, unannounced.
        let (tag, announce) = front.send()
        XCTAssertEqual(tag, 0)
        XCTAssertFalse(announce)
        // A starts its current wave 1 for it and publishes that; the front-end announces wave 1 to B.
        XCTAssertEqual(a.requestArrived(wave: tag), .started(selfStarted: true))
        XCTAssertEqual(a.currentWave, 1)
        XCTAssertNil(front.engineReported(wave: 0, inWave: true), "an old report")
        XCTAssertEqual(front.engineReported(wave: a.currentWave, inWave: a.running), 1)
        XCTAssertEqual(b.announced(wave: 1), .started(selfStarted: false))
        // B's older report (wave 1, idle) arrives late: the front-end still knows wave 1 runs.
        XCTAssertNil(front.engineReported(wave: 1, inWave: false))
        XCTAssertTrue(front.running)
        XCTAssertEqual(front.send().announce, false)
        // Wave 1 ends; the reports of wave 2 tell the front-end, whose next request announces wave 2.
        XCTAssertTrue(a.checked(anyBusy: false, agreedWave: 1))
        XCTAssertTrue(b.checked(anyBusy: false, agreedWave: 1))
        XCTAssertNil(front.engineReported(wave: 2, inWave: false))
        XCTAssertEqual(front.currentWave, 2)
        XCTAssertFalse(front.running)
        XCTAssertEqual(front.send().wave, 2)
    }

    func testTheCheckAgreesOnTheHighestWaveAndAFailedWaveSpendsItsNumber() {
        var a = DataParallelWaveState()
        _ = a.requestArrived(wave: 3)
        XCTAssertEqual(a.currentWave, 3)
        XCTAssertFalse(a.checked(anyBusy: true, agreedWave: 4))
        XCTAssertEqual(a.currentWave, 4)
        XCTAssertTrue(a.running)
        a.abandon()
        XCTAssertFalse(a.running)
        XCTAssertEqual(a.currentWave, 5)
        XCTAssertEqual(a.announced(wave: 4), .ignoredStale)
        // A later wave announced during a wave keeps it alive through one check.
        _ = a.requestArrived(wave: nil)
        XCTAssertEqual(a.announced(wave: 6), .deferred)
        XCTAssertTrue(a.checkContribution(hasUnfinishedRequests: false).busy)
        XCTAssertFalse(a.checked(anyBusy: true, agreedWave: 5))
        XCTAssertFalse(a.checkContribution(hasUnfinishedRequests: false).busy)
    }

    func testRandomInterleavingsNeverLeaveALoneWave() {
        for engines in [2, 3] {
            for seed in 1...300 {
                var sim = WaveSimulation(engines: engines, seed: UInt64(seed), numbered: true)
                let outcome = sim.run(requests: 25)
                XCTAssertEqual(outcome, .allServedAndIdle, "engines \(engines) seed \(seed): \(sim.trace.suffix(12))")
                if outcome != .allServedAndIdle { return }
            }
        }
    }

    /// The simulation can fail: the protocol before wave numbers (any start_wave starts or prolongs a wave,
    /// announced with every request) leaves a lone wave on some interleavings.
    func testTheSimulationCatchesTheUnnumberedProtocolsLoneWave() {
        var lone = 0
        for seed in 1...300 {
            var sim = WaveSimulation(engines: 2, seed: UInt64(seed), numbered: false)
            if sim.run(requests: 25) == .loneWave { lone += 1 }
        }
        XCTAssertGreaterThan(lone, 0)
    }
}

/// A front-end and N engines exchanging the protocol's messages in a random order: each engine reads its
/// connection in order (requests and announcements), the front-end reads each engine's latest published
/// statistics, and a wave step runs only when every engine is in a wave (the all-to-all waits for all).
private struct WaveSimulation {
    enum Message { case request(wave: Int, steps: Int), announce(Int) }
    enum Outcome: Equatable { case allServedAndIdle, loneWave, requestsLeft }

    /// The protocol before wave numbers, for the negative control.
    struct Unnumbered {
        var running = false, pending = false, steps = 0
        mutating func start() { if running { pending = true } else { running = true; steps = 0 } }
    }

    struct Engine {
        var wave = DataParallelWaveState()
        var old = Unnumbered()
        var inbox: [Message] = []
        var requests: [Int] = []
        var dirty = false
    }

    var engines: [Engine]
    var front = DataParallelWaveCoordinator()
    var rng: UInt64
    let numbered: Bool
    let checkInterval = 2
    var trace: [String] = []

    init(engines n: Int, seed: UInt64, numbered: Bool) {
        engines = Array(repeating: Engine(), count: n)
        rng = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        self.numbered = numbered
    }

    mutating func next(_ bound: Int) -> Int {
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17
        return Int(rng % UInt64(bound))
    }

    func running(_ e: Engine) -> Bool { numbered ? e.wave.running : e.old.running }

    mutating func send(to r: Int, steps: Int) {
        if numbered {
            let (w, announce) = front.send()
            if announce { for i in engines.indices where i != r { engines[i].inbox.append(.announce(w)) } }
            engines[r].inbox.append(.request(wave: w, steps: steps))
            trace.append("send r\(r) wave \(w) announce \(announce)")
        } else {
            for i in engines.indices where i != r { engines[i].inbox.append(.announce(0)) }
            engines[r].inbox.append(.request(wave: 0, steps: steps))
            trace.append("send r\(r)")
        }
    }

    mutating func deliver(_ r: Int) {
        let m = engines[r].inbox.removeFirst()
        switch m {
        case .request(let w, let steps):
            engines[r].requests.append(steps)
            if numbered { _ = engines[r].wave.requestArrived(wave: w) } else { engines[r].old.start() }
            trace.append("r\(r) request wave \(w) -> wave \(engines[r].wave.currentWave) running \(running(engines[r]))")
        case .announce(let w):
            if numbered { _ = engines[r].wave.announced(wave: w) } else { engines[r].old.start() }
            trace.append("r\(r) start_wave \(w) -> running \(running(engines[r]))")
        }
        engines[r].dirty = true
    }

    mutating func report(_ r: Int) {
        engines[r].dirty = false
        guard numbered else { return }
        let e = engines[r].wave
        if let w = front.engineReported(wave: e.currentWave, inWave: e.running) {
            for i in engines.indices where i != r { engines[i].inbox.append(.announce(w)) }
            trace.append("front: r\(r) reports wave \(e.currentWave) running: announce \(w)")
        }
    }

    /// One lock-step wave step on every engine, with the all-ranks check when due.
    mutating func waveStep() {
        var due = false
        for i in engines.indices {
            engines[i].requests = engines[i].requests.map { $0 - 1 }.filter { $0 > 0 }
            if numbered {
                due = engines[i].wave.stepped(checkInterval: checkInterval)
            } else {
                engines[i].old.steps += 1
                due = engines[i].old.steps % checkInterval == 0
            }
        }
        guard due else { return }
        if numbered {
            let contributions = engines.map { $0.wave.checkContribution(hasUnfinishedRequests: !$0.requests.isEmpty) }
            let busy = contributions.contains { $0.busy }, agreed = contributions.map(\.wave).max()!
            for i in engines.indices { _ = engines[i].wave.checked(anyBusy: busy, agreedWave: agreed); engines[i].dirty = true }
        } else {
            let busy = engines.contains { !$0.requests.isEmpty || $0.old.pending }
            for i in engines.indices {
                engines[i].old.pending = false
                if !busy { engines[i].old.running = false }
            }
        }
        trace.append("check: \(engines.map { running($0) })")
    }

    mutating func run(requests: Int) -> Outcome {
        var sent = 0
        for _ in 0..<100_000 {
            var actions: [Int] = []  // 0: send, 1..N: deliver to engine, N+1..2N: report, 2N+1: wave step
            let n = engines.count
            if sent < requests { actions.append(0) }
            for i in 0..<n where !engines[i].inbox.isEmpty { actions.append(1 + i) }
            for i in 0..<n where engines[i].dirty { actions.append(1 + n + i) }
            if engines.allSatisfy({ running($0) }) { actions.append(2 * n + 1) }
            guard !actions.isEmpty else { break }
            let a = actions[next(actions.count)]
            if a == 0 {
                send(to: next(n), steps: 1 + next(5))
                sent += 1
            } else if a <= n {
                deliver(a - 1)
            } else if a <= 2 * n {
                report(a - 1 - n)
            } else {
                waveStep()
            }
        }
        if engines.contains(where: { running($0) }) { return .loneWave }
        return engines.allSatisfy({ $0.requests.isEmpty }) ? .allServedAndIdle : .requestsLeft
    }
}
