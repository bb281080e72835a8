import ArgumentParser
import CPagodaSystem
import Foundation
import PagodaDistributed
import PagodaEngine
import PagodaServer

#if canImport(Glibc)
import Glibc
#endif

/// `pagoda worker`: one tensor/pipeline-parallel worker process (started by the multiprocess executor;
/// hidden). Also two diagnostic modes for the communicators:
///   `pagoda worker --collective-selftest --world-size 4 --transport shm`  checks every collective
///   `pagoda worker --collective-bench --world-size 2 --transport tcp`     all-reduce latency, 4 KiB and 4 MiB
/// Without `--rank` those modes start `--world-size` copies of themselves, one per rank, and report.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker", abstract: "Run one tensor/pipeline-parallel worker process (started by the engine; hidden).",
        shouldDisplay: false)

    @Option(help: "Unix socket of the engine that started this worker (executor mode).")
    var engineSocket: String?

    @Option(help: "tcp://host:port of the engine that started this worker, on another host (executor mode; needs the secret).")
    var engineAddress: String?

    @Option(help: "Identity of the engine that started this worker; the engine and the worker check it.")
    var engineId: String?

    @Option(help: "Pid of the engine process; the worker dies with it.")
    var parentPid: Int?

    @Option(help: "This process's rank.")
    var rank: Int?

    @Flag(help: "Run the collective self-test (every collective vs a single-process computation).")
    var collectiveSelftest = false

    @Flag(help: "Measure all-reduce latency for 4 KiB and 4 MiB.")
    var collectiveBench = false

    @Option(help: "Ranks in the group (self-test and bench).")
    var worldSize: Int = 2

    @Option(help: "shm or tcp (self-test and bench).")
    var transport: String = "shm"

    @Option(help: "Group address (set by the launcher): shm:/name or tcp:host:port.")
    var address: String?

    @Option(help: "All-reduce calls per size (bench).")
    var iterations: Int = 2000

    @Flag(help: "Pin rank r to CPU r mod #CPUs (bench).")
    var pin = false

    @OptionGroup var secretArgs: InternalSecretArgs

    /// Executor mode: the engine's control address (`--engine-socket` or `--engine-address`), else nil.
    func engineControlAddress() throws -> EngineRPCAddress? {
        if let engineSocket { return .unix(path: engineSocket) }
        guard let engineAddress else { return nil }
        guard let a = try? EngineRPCAddress(parsing: engineAddress), case .tcp = a else {
            throw ValidationError("invalid --engine-address \(engineAddress): expected tcp://host:port")
        }
        return a
    }

    func validate() throws {
        if engineSocket != nil && engineAddress != nil {
            throw ValidationError("--engine-socket and --engine-address cannot be used together")
        }
        let engineSocket = try engineControlAddress()
        if engineSocket != nil && engineId == nil {
            throw ValidationError("--engine-id is required with --engine-socket or --engine-address")
        }
        if !collectiveSelftest && !collectiveBench && engineSocket == nil {
            throw ValidationError(
                "pagoda worker is started by the engine (--engine-socket or --engine-address), or use --collective-selftest / --collective-bench"
            )
        }
        if worldSize < 1 || worldSize > 64 { throw ValidationError("--world-size must be 1...64, got \(worldSize)") }
        if transport != "shm" && transport != "tcp" { throw ValidationError("--transport must be shm or tcp, got \(transport)") }
        if let rank, engineSocket == nil, !(0..<worldSize).contains(rank) {
            throw ValidationError("--rank must be in 0..<\(worldSize) (--world-size), got \(rank)")
        }
        if let rank, rank < 0 { throw ValidationError("--rank must be at least 0, got \(rank)") }
    }

    func run() async throws {
        if let engine = try engineControlAddress() {
            try await runEngineWorker(engine: engine)
            return
        }
        if let rank {
            try runRank(rank)
        } else {
            try launchRanks()
        }
    }

    /// One rank of the self-test or bench; prints one line per result.
    private func runRank(_ rank: Int) throws {
        setvbuf(stdout, nil, _IOLBF, 0)
        guard let address else { throw ValidationError("--address is required with --rank") }
        if pin { _ = pagoda_pin_thread_to_cpu(Int32(rank % Int(pagoda_available_cpus()))) }
        // The launcher hands the group's secret over on stdin; a rank started by hand may use the variable.
        guard let secret = try secretArgs.configured() else {
            throw ValidationError("--rank needs the group's secret (\(InternalSecretArgs.flag) or \(InternalSecretArgs.variable))")
        }
        let comm = try CommunicatorAddress(parsing: address).connect(rank: rank, worldSize: worldSize, secret: secret, timeout: 120)
        if collectiveSelftest {
            let failures = try CollectiveSelfTest.run(comm)
            for f in failures { print("FAIL \(f)") }
            if rank == 0 && failures.isEmpty {
                print("collective self-test: \(transport), \(worldSize) ranks, counts \(CollectiveSelfTest.defaultCounts): all equal")
            }
            if !failures.isEmpty { throw ExitCode(1) }
        }
        if collectiveBench {
            for bytes in [4 << 10, 4 << 20] {
                let iters = bytes > 1 << 20 ? max(20, iterations / 20) : iterations
                let (median, p99) = try CollectiveSelfTest.benchmarkAllReduce(comm, count: bytes / 4, iterations: iters)
                if rank == 0 {
                    print(
                        String(
                            format: "all-reduce %@ %d ranks %7d bytes: median %.1f us, p99 %.1f us (%d calls)",
                            transport, worldSize, bytes, median, p99, iters))
                }
            }
        }
    }

    /// Starts one child per rank with the same mode, waits for all, fails if any failed.
    private func launchRanks() throws {
        setvbuf(stdout, nil, _IOLBF, 0)
        let group: String
        if transport == "shm" {
            group = "shm:/pagoda-worker-\(getpid())"
        } else {
            let l = try TCPCommunicator.makeListener(host: "127.0.0.1")
            close(l.fd)
            group = "tcp:127.0.0.1:\(l.port)"
        }
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let secret = try secretArgs.resolve(requiredFor: nil)
        var children: [Process] = []
        for r in 0..<worldSize {
            let p = Process()
            p.executableURL = exe
            var args = [
                "worker", "--rank", "\(r)", "--world-size", "\(worldSize)", "--transport", transport,
                "--address", group, "--iterations", "\(iterations)",
            ]
            if collectiveSelftest { args.append("--collective-selftest") }
            if collectiveBench { args.append("--collective-bench") }
            if pin { args.append("--pin") }
            p.arguments = args + ChildSecret.arguments
            p.standardInput = ChildSecret.pipe(secret)
            try p.run()
            children.append(p)
        }
        var failed: [Int] = []
        for (r, p) in children.enumerated() {
            p.waitUntilExit()
            if p.terminationStatus != 0 { failed.append(r) }
        }
        if !failed.isEmpty {
            print("ranks \(failed) failed")
            throw ExitCode(1)
        }
    }
}

extension WorkerCommand {
    /// Executor mode: serves the engine at `engine` until it says shut down (over TCP, after proving the secret
    /// it was handed on stdin).
    /// Serves the engine on a dedicated thread named `pagoda-stage` (it runs the forward passes and is
    /// pinned to this worker's first CPU), not on a thread of Swift's cooperative pool.
    func runEngineWorker(engine: EngineRPCAddress) async throws {
        guard let rank else { throw ValidationError("--rank is required with --engine-socket") }
        let parent = parentPid.map { Int32($0) }
        var secret: PeerSecret? = nil
        if case .tcp = engine {
            guard let s = try secretArgs.configured() else {
                throw ValidationError(
                    "--engine-address needs the deployment's secret (\(InternalSecretArgs.flag) or \(InternalSecretArgs.variable))")
            }
            secret = s
        }
        let engineId = engineId ?? ""
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let t = Thread {
                // The kernel's thread name (top -H, /proc/<pid>/task/<tid>/comm).
                if let f = fopen("/proc/thread-self/comm", "w") { fputs("pagoda-stage", f); fclose(f) }
                MultiprocWorker.run(engine: engine, engineId: engineId, secret: secret, rank: rank, parentPid: parent)
                done.resume()
            }
            t.name = "pagoda-stage"
            t.stackSize = 8 << 20
            t.start()
        }
    }
}
