import CPagodaSystem
import Foundation

/// A persistent pool of pinned worker threads for numeric work (GEMM, attention).
///
/// `parallelFor(n) { i in ... }` runs the body for every i in 0..<n, spreading tasks over the pool's
/// threads and the calling thread (tasks are claimed one at a time from an atomic counter), and returns
/// when all are done. Idle workers spin ~2,000 `pause`s, then sleep on a futex (CPU-FACTS: waking a
/// sleeping thread costs more than a small task; unpinned spinners stall for milliseconds, so workers
/// are pinned). Not re-entrant: a body must not call `parallelFor` on the same pool.
public final class ThreadPool: @unchecked Sendable {
    /// Total threads doing work, the caller included.
    public let threads: Int
    private let state: PoolState

    /// `threads`: how many threads work (the caller is one of them); default all available CPUs.
    ///
    /// `cpus`: the CPU ids workers are pinned to, worker w (1-based) on cpus[w % cpus.count]; default
    /// 0..<availableCPUs. Processes sharing a host (TP/PP workers) should pass disjoint sets.
    ///
    /// `pin`: false leaves the workers unpinned (processes oversubscribing the host's CPUs, where a
    /// thread pinned to a CPU another process also uses would wait for it).
    public convenience init(threads: Int = ThreadPool.availableCPUs) {
        self.init(threads: threads, cpus: nil)
    }

    public init(threads: Int, cpus: [Int]?, pin: Bool = true) {
        self.threads = max(1, threads)
        self.state = PoolState(workers: self.threads - 1)
        let cpuList = (cpus?.isEmpty == false) ? cpus! : Array(0..<ThreadPool.availableCPUs)
        for w in 0..<(self.threads - 1) {
            let state = self.state
            let cpu = cpuList[(w + 1) % cpuList.count]
            let thread = Thread { state.workerLoop(cpu: pin ? cpu : nil) }
            thread.name = "pagoda-pool-\(w + 1)"
            thread.start()
        }
    }

    deinit { state.stop() }

    /// Number of CPUs this process may run on.
    public static var availableCPUs: Int { Int(pagoda_available_cpus()) }

    /// Runs `body(i)` for i in 0..<n on the pool and the calling thread; returns when all finished.
    public func parallelFor(_ n: Int, _ body: (Int) -> Void) {
        if n <= 0 { return }
        if threads == 1 || n == 1 {
            for i in 0..<n { body(i) }
            return
        }
        withoutActuallyEscaping(body) { escapable in
            state.run(n, escapable)
        }
    }
}

/// The memory the caller and workers share: control words on separate cache lines.
final class PoolState: @unchecked Sendable {
    let workers: Int
    private let control: UnsafeMutableRawPointer
    private var generation: UnsafeMutablePointer<UInt32> { control.assumingMemoryBound(to: UInt32.self) }
    private var sleepers: UnsafeMutablePointer<UInt32> { (control + 64).assumingMemoryBound(to: UInt32.self) }
    private var done: UnsafeMutablePointer<UInt32> { (control + 128).assumingMemoryBound(to: UInt32.self) }
    private var nextTask: UnsafeMutablePointer<Int64> { (control + 192).assumingMemoryBound(to: Int64.self) }
    private var stopping: UnsafeMutablePointer<UInt32> { (control + 256).assumingMemoryBound(to: UInt32.self) }
    private var taskCount = 0
    private var job: ((Int) -> Void)?

    init(workers: Int) {
        self.workers = workers
        control = UnsafeMutableRawPointer.allocate(byteCount: 320, alignment: 64)
        control.initializeMemory(as: UInt8.self, repeating: 0, count: 320)
    }

    deinit { control.deallocate() }

    func run(_ n: Int, _ body: @escaping (Int) -> Void) {
        job = body
        taskCount = n
        pagoda_atomic_store_i64(nextTask, 0)
        pagoda_atomic_store_u32(done, 0)
        _ = pagoda_atomic_fetch_add_u32(generation, 1)
        if pagoda_atomic_load_u32(sleepers) > 0 { pagoda_futex_wake(generation, Int32(workers)) }
        runTasks()
        var spins = 0
        while pagoda_atomic_load_u32(done) < UInt32(workers) {
            spins += 1
            if spins < 100_000 { pagoda_cpu_relax() } else { sched_yield() }
        }
        job = nil  // withoutActuallyEscaping requires the closure not to outlive the call
    }

    private func runTasks() {
        guard let job else { return }
        let n = Int64(taskCount)
        while true {
            let i = pagoda_atomic_fetch_add_i64(nextTask, 1)
            if i >= n { break }
            job(Int(i))
        }
    }

    func workerLoop(cpu: Int?) {
        if let cpu { _ = pagoda_pin_thread_to_cpu(Int32(cpu)) }
        // A pinned worker spins ~50,000 pauses (about a millisecond) before sleeping, so that it is awake for the
        // next GEMM of the same decode step: with ~2,000 it fell asleep between them and each futex wake-up came
        // late (2 threads, 0.5B shape, batch 1: ~10 % slower per step in back-to-back runs). Unpinned workers
        // share their CPUs with other processes and keep the short spin (CPU-FACTS: unpinned spinners stall).
        let spinLimit = cpu == nil ? 2_000 : 50_000
        // Generation 0 is the state at creation; reading it here instead would miss a job posted
        // before this thread started.
        var seen: UInt32 = 0
        while true {
            var spins = 0
            while pagoda_atomic_load_u32(generation) == seen {
                if spins < spinLimit {
                    pagoda_cpu_relax()
                    spins += 1
                } else {
                    _ = pagoda_atomic_fetch_add_u32(sleepers, 1)
                    pagoda_futex_wait(generation, seen)
                    _ = pagoda_atomic_fetch_add_u32(sleepers, UInt32.max)  // -1
                }
            }
            seen = pagoda_atomic_load_u32(generation)
            if pagoda_atomic_load_u32(stopping) != 0 { return }
            runTasks()
            _ = pagoda_atomic_fetch_add_u32(done, 1)
        }
    }

    func stop() {
        pagoda_atomic_store_u32(stopping, 1)
        _ = pagoda_atomic_fetch_add_u32(generation, 1)
        pagoda_futex_wake(generation, Int32.max)
    }
}
