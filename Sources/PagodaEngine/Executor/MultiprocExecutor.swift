import Foundation
import PagodaDistributed

#if canImport(Glibc)
import Glibc
#endif

/// Runs the model in TP × PP worker processes (vLLM's `MultiprocExecutor`, `--distributed-executor-backend mp`).
///
/// Start-up: listens on a Unix socket, spawns `pagoda worker --engine-socket … --rank r --engine-id ID` for
/// every worker rank r = ppRank × TP + tpRank, checks each worker's hello (its rank, and the engine identity
/// it was started for), sends each the `EngineConfig` and its group addresses, and waits until every worker
/// has loaded its shard. The listener is closed once every worker is connected. Every step the `SchedulerOutput` is sent to all workers;
/// each runs its stage (pipeline stages pass hidden state + residual by send/recv), and the driver (last
/// stage, TP rank 0) answers with the `ModelRunnerOutput`.
///
/// Failure: while waiting, the executor watches every worker's socket. A socket that closes or a
/// worker that reports an error ends the executor: the worker to blame is found (a worker that reports
/// "peer died" blames that peer; else the one whose socket closed first), every worker is killed and
/// reaped, and `executeModel` throws `MultiprocExecutorError` naming the rank from then on. Workers also
/// die with the engine: they set PR_SET_PDEATHSIG (the spawning thread lives until `shutdown`) and exit
/// when their socket closes.
///
/// Workers on other hosts (or network namespaces): `ParallelConfig.workerHosts` gives, per worker rank,
/// the address that worker is reached at; every group then meets over TCP at the address of its first
/// rank (vLLM's MASTER_ADDR, per group). `ParallelConfig.workerLaunchPrefix` is a command put before
/// each worker's command line, `{rank}` replaced by its rank (for example `ip netns exec pagoda-ns{rank}`,
/// or an ssh wrapper); the prefix must exec the worker so that its pid is the worker's. The control
/// channel is a Unix socket (a worker must see the engine's file system, `TMPDIR`) unless
/// `ParallelConfig.workerControlHost` is set: the engine then listens on TCP at that address
/// (`MultiprocTCPControl`), each worker gets `--engine-address tcp://host:port` and the secret on its stdin
/// (`--internal-secret-file /dev/stdin`; a launch prefix must pass stdin on), and proves the secret before
/// any frame; keepalive notices a worker whose host vanished.
///
/// Micro-batches (vLLM's batch queue): `submitModel` sends a step to every worker and returns a future
/// at once; up to `maxConcurrentBatches` (`ParallelConfig.maxConcurrentBatches`, default P) steps are in flight,
/// so while the last stage runs step k the first stage already runs step k+1. Each worker runs its
/// steps in the order they arrive and the driver answers in that order, so outputs are matched to
/// futures by sequence number.
public final class MultiprocExecutor: Executor {
    public private(set) var modelInfo = ModelInfo(vocabSize: 0, eosTokenIds: [], maxPositionEmbeddings: 0, kvCacheBytesPerBlock: 0)
    public let layout: ParallelLayout
    /// Worker process ids by rank (tests kill one to check failure handling).
    public private(set) var workerPids: [Int32] = []

    private let config: EngineConfig
    private var channels: [MultiprocChannel?] = []
    private var exitStatus: [Int32?] = []
    private let socketPath: String
    /// Checked in every worker's hello and init: a worker started for another engine is refused.
    let engineId: String
    private var shmNames: [String] = []
    private let spawner: WorkerSpawner
    private var failure: MultiprocExecutorError?
    private var isShutDown = false
    private var pollFds: [pollfd] = []
    /// Steps submitted / outputs received from the driver; `pendingOutputs` holds received outputs whose
    /// futures were not asked yet, by sequence number.
    private var numSubmitted = 0
    private var numReceived = 0
    private var pendingOutputs: [Int: ModelRunnerOutput] = [:]
    public let maxConcurrentBatches: Int
    /// Merges the workers' KV connector reports (`--kv-transfer-config`; nil without one).
    private let kvAggregator: KVOutputAggregator?
    /// The most steps that were in flight at once (submitted, output not yet received by the engine).
    public private(set) var peakStepsInFlight = 0
    /// Steps submitted while another step was still in flight (the pipeline stages could overlap).
    public private(set) var numOverlappedSubmits = 0

    private static let counterLock = NSLock()
    nonisolated(unsafe) private static var counter = 0

    /// Starts the workers for `config` (TP × PP of `config.parallel`) and waits until all loaded the model.
    public init(config: EngineConfig) throws {
        self.config = config
        let p = config.parallel
        layout = ParallelLayout(tensorParallelSize: p.tensorParallelSize, pipelineParallelSize: p.pipelineParallelSize)
        let n = layout.workersPerEngine
        Self.counterLock.lock(); Self.counter += 1; let k = Self.counter; Self.counterLock.unlock()
        let id = "\(getpid())-\(k)"
        socketPath = NSTemporaryDirectory().appending("pagoda-\(id).sock")
        engineId = "\(ProcessInfo.processInfo.hostName)-\(id)-\(UInt32.random(in: 0...UInt32.max))"
        spawner = WorkerSpawner()
        channels = Array(repeating: nil, count: n)
        exitStatus = Array(repeating: nil, count: n)
        maxConcurrentBatches = max(1, p.maxConcurrentBatches ?? p.pipelineParallelSize)
        kvAggregator = config.kvTransfer.map { _ in KVOutputAggregator(worldSize: n) }

        do {
            try p.validate()
            let (tpAddresses, ppAddresses) = try Self.groupAddresses(layout: layout, parallel: p, id: id, shmNames: &shmNames)
            let exe = try Self.workerExecutable(p.workerExecutable)
            // Every worker is started here: without a deployment secret, a fresh one serves as well.
            let groupSecret = config.internalSecret ?? .random()
            let listener: ControlListener
            let control: [String]
            var stdinSecret: PeerSecret? = nil
            if let host = p.workerControlHost {
                let l = try MultiprocTCPControl.listen(host: host, secret: groupSecret)
                listener = .tcp(l)
                // The secret goes to the worker's stdin, never to argv (which `ps` shows).
                control = ["--engine-address", l.address.description, "--internal-secret-file", "/dev/stdin"]
                stdinSecret = groupSecret
            } else {
                listener = .unix(try MultiprocUnixSocket.listen(path: socketPath))
                control = ["--engine-socket", socketPath]
            }
            defer { if case .unix(let fd) = listener { close(fd) } }
            let prefix = p.workerLaunchPrefix
            // A Ray actor is the parent of a Ray-placed worker: it stops the worker itself.
            let parent = p.executorBackend == .ray ? [] : ["--parent-pid", "\(getpid())"]
            let identity = engineId
            workerPids = try spawner.spawn(count: n, stdin: stdinSecret.map { Data(($0.text + "\n").utf8) }) { rank in
                prefix.map { $0.replacingOccurrences(of: "{rank}", with: "\(rank)") }
                    + [exe, "worker"] + control + ["--rank", "\(rank)", "--engine-id", identity] + parent
            }
            try acceptWorkers(listener: listener)
            unlink(socketPath)  // every worker is connected: nothing is left to clean up if the engine is killed
            for r in 0..<n {
                let initMsg = MultiprocWorkerInit(
                    config: config, tensorGroupAddress: tpAddresses[layout.ppRank(ofWorker: r)],
                    pipelineGroupAddress: ppAddresses[layout.tpRank(ofWorker: r)], secret: groupSecret, engineId: engineId)
                try send(.initialize(initMsg), to: r)
            }
            let replies = try awaitReplies(from: Set(0..<n))
            var total = 0
            var kvPorts: [Int] = []
            for r in 0..<n {
                guard case .ready(let mi) = replies[r] else {
                    throw MultiprocExecutorError.startFailed("rank \(r) answered \(String(describing: replies[r]))")
                }
                total += mi.kvCacheBytesPerBlock
                kvPorts += mi.kvServerPorts
                if r == layout.driverRank { modelInfo = mi }
            }
            modelInfo.kvCacheBytesPerBlock = total
            modelInfo.kvServerPorts = kvPorts  // ranks 0..<TP: PP is 1 with a KV connector
        } catch {
            killAll()
            cleanUpNames()
            if let e = error as? MultiprocExecutorError { throw e }
            throw MultiprocExecutorError.startFailed("\(error)")
        }
    }

    deinit { shutdown() }

    // MARK: Executor

    public func determineNumAvailableBlocks(_ cache: CacheConfig) throws -> Int {
        try KVCacheSizing.numBlocks(
            cache, bytesPerBlock: modelInfo.kvCacheBytesPerBlock,
            weightBytes: KVCacheSizing.weightBytes(modelPath: config.model.path))
    }

    public func initializeCache(numBlocks: Int) throws {
        try checkAlive()
        try broadcast(.initializeCache(numBlocks: numBlocks))
        let replies = try awaitReplies(from: Set(0..<layout.workersPerEngine))
        for (r, reply) in replies {
            guard case .ok = reply else { throw fail(MultiprocExecutorError.workerFailed(rank: r, message: "unexpected reply \(reply)")) }
        }
    }

    public func executeModel(_ schedulerOutput: SchedulerOutput) throws -> ModelRunnerOutput {
        try submitModel(schedulerOutput).result()
    }

    public func submitModel(_ schedulerOutput: SchedulerOutput) throws -> ModelRunnerFuture {
        try checkAlive()
        try broadcast(.execute(schedulerOutput))
        let seq = numSubmitted
        numSubmitted += 1
        let inFlight = numSubmitted - numReceived
        peakStepsInFlight = max(peakStepsInFlight, inFlight)
        if inFlight > 1 { numOverlappedSubmits += 1 }
        return ModelRunnerFuture { [unowned self] in try self.collect(seq) }
    }

    /// The output of step `seq`, reading the driver's answers (in step order) until it is there. With a KV
    /// connector every worker answers each step (its connector's report), merged by `kvAggregator`.
    private func collect(_ seq: Int) throws -> ModelRunnerOutput {
        while numReceived <= seq {
            try checkAlive()
            let ranks = kvAggregator == nil ? [layout.driverRank] : Set(0..<layout.workersPerEngine)
            let replies = try awaitReplies(from: ranks)
            guard case .output(var out)? = replies[layout.driverRank] else {
                throw fail(
                    MultiprocExecutorError.workerFailed(
                        rank: layout.driverRank, message: "unexpected reply \(String(describing: replies[layout.driverRank]))"))
            }
            if let kvAggregator {
                let reports = (0..<layout.workersPerEngine).map { r -> KVConnectorOutput? in
                    if case .output(let o)? = replies[r] { return o.kvConnectorOutput }
                    return nil
                }
                out.kvConnectorOutput = kvAggregator.aggregate(reports)
            }
            pendingOutputs[numReceived] = out
            numReceived += 1
        }
        guard let out = pendingOutputs.removeValue(forKey: seq) else {
            throw EngineError.engineDead("the output of step \(seq) was collected twice")
        }
        return out
    }

    public func shutdown() {
        if isShutDown { return }
        isShutDown = true
        if failure == nil {
            for r in channels.indices { try? channels[r]?.send(MultiprocRequest.shutdown) }
            let deadline = Date().addingTimeInterval(5)
            while Date() < deadline && (0..<workerPids.count).contains(where: { reap($0, block: false) == nil }) {
                usleep(5000)
            }
        }
        killAll()
        cleanUpNames()
        spawner.stop()
    }

    // MARK: Start-up

    /// shm names (one host) or TCP rendezvous addresses (transport tcp, or worker hosts given) for every group.
    private static func groupAddresses(
        layout: ParallelLayout, parallel: ParallelConfig, id: String, shmNames: inout [String]
    ) throws -> ([String], [String]) {
        let hosts = parallel.workerHosts
        let tcp = parallel.effectiveTransport == .tcp
        func address(_ group: ProcessGroup) throws -> String {
            if group.size == 1 { return "single" }
            if tcp {
                // A port free here; on another host (or namespace) it is almost surely free too.
                let l = try TCPCommunicator.makeListener(host: "127.0.0.1")
                close(l.fd)
                return "tcp:\(hosts?[group.ranks[0]] ?? "127.0.0.1"):\(l.port)"
            }
            let name = "/pagoda-\(id)-\(group.name)"
            shmNames.append(name)
            return "shm:\(name)"
        }
        let tp = try (0..<layout.pipelineParallelSize).map { try address(layout.tensorGroup(ppRank: $0)) }
        let pp = try (0..<layout.tensorParallelSize).map { try address(layout.pipelineGroup(tpRank: $0)) }
        return (tp, pp)
    }

    /// The configured worker executable, this process if it is `pagoda`, or a `pagoda` beside this executable
    /// (the test bundle in `.build/debug`).
    static func workerExecutable(_ configured: String?) throws -> String {
        if let p = configured { return p }
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        if me.lastPathComponent == "pagoda" { return me.path }
        let sibling = me.deletingLastPathComponent().appendingPathComponent("pagoda").path
        if FileManager.default.isExecutableFile(atPath: sibling) { return sibling }
        throw MultiprocExecutorError.startFailed(
            "no pagoda executable for the workers beside \(me.path); pass --worker-executable (or set PAGODA_WORKER_EXECUTABLE)")
    }

    /// Where the workers connect: the engine's Unix socket, or its TCP listener (`MultiprocTCPControl`).
    private enum ControlListener {
        case unix(Int32)
        case tcp(EngineRPCListener)
    }

    /// Accepts one connection per worker rank (every wait bounded: 120 s in all, 5 s for a hello). A TCP
    /// peer that does not prove the secret, or whose hello names another engine, is logged and closed; a
    /// worker of this engine that names a rank out of range or taken ends the start-up.
    private func acceptWorkers(listener: ControlListener) throws {
        let n = layout.workersPerEngine
        let deadline = Date().addingTimeInterval(120)
        var connected = 0
        while connected < n {
            for r in 0..<n where channels[r] == nil {
                if let st = reap(r, block: false) {
                    throw MultiprocExecutorError.workerDied(rank: r, detail: "\(Self.describe(status: st)) before connecting")
                }
            }
            if Date() > deadline { throw MultiprocExecutorError.startFailed("only \(connected) of \(n) workers connected within 120 s") }
            let ch: MultiprocChannel
            switch listener {
            case .unix(let fd):
                guard let c = MultiprocUnixSocket.accept(fd, timeoutMs: 100) else { continue }
                ch = MultiprocChannel(fd: c)
            case .tcp(let l):
                guard let c = try MultiprocTCPControl.accept(l, timeout: 0.1, check: {}) else { continue }
                ch = c
            }
            let hello: MultiprocHello
            do { hello = try ch.receive(MultiprocHello.self, timeout: MultiprocTCPControl.helloTimeoutSeconds) } catch {
                fputs("pagoda: the executor closed a worker connection without a hello within 5 s: \(error)\n", stderr)
                continue
            }
            guard hello.engineId == engineId else {
                fputs(
                    "pagoda: the executor refused a worker (rank \(hello.rank), pid \(hello.pid)) of engine \(hello.engineId), not \(engineId)\n",
                    stderr)
                continue
            }
            guard hello.rank >= 0 && hello.rank < n && channels[hello.rank] == nil else {
                throw MultiprocExecutorError.startFailed("unexpected hello from rank \(hello.rank)")
            }
            if case .tcp = listener {
                fputs(
                    "pagoda: worker rank \(hello.rank) (pid \(hello.pid)) connected over TCP from \(MultiprocTCPControl.peer(ch))\n", stderr
                )
            }
            channels[hello.rank] = ch
            connected += 1
        }
    }

    // MARK: Messaging

    private func send(_ m: MultiprocRequest, to r: Int) throws {
        do { try channels[r]!.send(m) } catch {
            throw fail(MultiprocExecutorError.workerDied(rank: r, detail: "its socket closed"))
        }
    }

    /// Encodes once, writes to every worker.
    private func broadcast(_ m: MultiprocRequest) throws {
        let body = try JSONEncoder().encode(m)
        for r in channels.indices {
            do { try channels[r]!.sendFrame(body) } catch {
                throw fail(MultiprocExecutorError.workerDied(rank: r, detail: "its socket closed"))
            }
        }
    }

    /// One reply from each rank in `ranks`, while watching every worker for failure.
    private func awaitReplies(from ranks: Set<Int>) throws -> [Int: MultiprocReply] {
        var pending = ranks
        var replies: [Int: MultiprocReply] = [:]
        while !pending.isEmpty {
            pollFds.removeAll(keepingCapacity: true)
            for ch in channels { pollFds.append(pollfd(fd: ch!.fd, events: Int16(POLLIN), revents: 0)) }
            let ready = poll(&pollFds, nfds_t(pollFds.count), 1000)
            if ready <= 0 {
                // Nothing to read: a worker killed while idle shows here as an exited child.
                for r in 0..<channels.count {
                    if let st = reap(r, block: false) {
                        throw fail(MultiprocExecutorError.workerDied(rank: r, detail: Self.describe(status: st)))
                    }
                }
                continue
            }
            for r in 0..<channels.count where pollFds[r].revents != 0 {
                let reply: MultiprocReply
                do {
                    reply = try JSONDecoder().decode(MultiprocReply.self, from: try channels[r]!.receiveFrame())
                } catch {
                    throw fail(MultiprocExecutorError.workerDied(rank: r, detail: "its socket closed"))
                }
                if case .failed(let message, let blamed) = reply {
                    if let b = blamed, b != r {
                        throw fail(MultiprocExecutorError.workerDied(rank: b, detail: "reported by rank \(r): \(message)"))
                    }
                    throw fail(MultiprocExecutorError.workerFailed(rank: r, message: message))
                }
                guard pending.contains(r) else {
                    throw fail(MultiprocExecutorError.workerFailed(rank: r, message: "unexpected message \(reply)"))
                }
                replies[r] = reply
                pending.remove(r)
            }
        }
        return replies
    }

    // MARK: Failure and clean-up

    private func checkAlive() throws {
        if let failure { throw failure }
        if isShutDown { throw EngineError.engineDead("the multiprocess executor was shut down") }
    }

    /// Records the first failure, settles who is to blame, kills every worker. Returns the error to throw.
    private func fail(_ error: MultiprocExecutorError) -> MultiprocExecutorError {
        if let failure { return failure }
        var e = error
        // A worker that closed its socket: say how it ended (wait briefly for the exit status).
        if case .workerDied(let r, let detail) = error, r >= 0 && r < workerPids.count {
            var st: Int32? = nil
            let deadline = Date().addingTimeInterval(0.5)
            while st == nil && Date() < deadline {
                st = reap(r, block: false)
                if st == nil { usleep(2000) }
            }
            if let st {
                e = .workerDied(
                    rank: r,
                    detail: "pid \(workerPids[r]) \(Self.describe(status: st))" + (detail.hasPrefix("reported") ? " (\(detail))" : ""))
            }
        }
        failure = e
        killAll()
        cleanUpNames()
        return e
    }

    /// Exit status of worker `r` if it has exited (reaping it), nil while it runs.
    @discardableResult
    private func reap(_ r: Int, block: Bool) -> Int32? {
        if let s = exitStatus[r] { return s }
        guard r < workerPids.count else { return nil }
        var status: Int32 = 0
        let res = waitpid(workerPids[r], &status, block ? 0 : WNOHANG)
        if res == workerPids[r] { exitStatus[r] = status; return status }
        if res < 0 && errno == ECHILD { exitStatus[r] = -1; return -1 }
        return nil
    }

    private func killAll() {
        for r in workerPids.indices where reap(r, block: false) == nil { kill(workerPids[r], SIGKILL) }
        for r in workerPids.indices { reap(r, block: true) }
        for r in channels.indices { channels[r] = nil }
        unlink(socketPath)
    }

    private func cleanUpNames() {
        for name in shmNames { SharedMemoryCommunicator.removeSegment(name: name) }
    }

    static func describe(status: Int32) -> String {
        if status == -1 { return "exited" }
        let sig = status & 0x7f
        if sig == 0 { return "exited with status \((status >> 8) & 0xff)" }
        return "was killed by signal \(sig)"
    }
}

/// Spawns the worker processes from one dedicated thread that lives until `stop()`: the kernel sends a
/// child's PR_SET_PDEATHSIG when the thread that forked it exits, so that must be the engine's lifetime.
final class WorkerSpawner {
    private let request = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)
    private var job: (() -> Void)?
    private var stopped = false
    private var thread: Thread?

    /// Starts `count` processes, `arguments(r)` for r in 0..<count; `stdin`: bytes each child reads on its
    /// stdin (a pipe closed after them), else the child inherits this process's stdin.
    func spawn(count: Int, stdin: Data? = nil, arguments: @escaping (Int) -> [String]) throws -> [Int32] {
        if thread == nil {
            let t = Thread { [unowned self] in
                while true {
                    self.request.wait()
                    if self.stopped { self.done.signal(); return }
                    self.job?()
                    self.done.signal()
                }
            }
            t.name = "pagoda-worker-spawner"
            t.start()
            thread = t
        }
        var pids: [Int32] = []
        var failure: Error? = nil
        job = {
            for r in 0..<count {
                do { pids.append(try Self.posixSpawn(arguments(r), stdin: stdin)) } catch { failure = error; return }
            }
        }
        request.signal()
        done.wait()
        job = nil
        if let failure {
            for p in pids { kill(p, SIGKILL); var s: Int32 = 0; waitpid(p, &s, 0) }
            throw failure
        }
        return pids
    }

    func stop() {
        guard thread != nil, !stopped else { return }
        stopped = true
        request.signal()
        done.wait()
    }

    static func posixSpawn(_ args: [String], stdin: Data? = nil) throws -> Int32 {
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // The pipe's ends are close-on-exec: only the dup on the child's fd 0 survives its exec.
        var fds: [Int32] = [-1, -1]
        if let stdin {
            guard stdin.count <= 4096, pipe(&fds) == 0 else {
                throw MultiprocExecutorError.startFailed("pipe for \(args[0]): \(String(cString: strerror(errno)))")
            }
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            posix_spawn_file_actions_adddup2(&actions, fds[0], 0)
        }
        defer { for fd in fds where fd >= 0 { close(fd) } }
        // posix_spawnp: a launch prefix names its command (`ip`) by name.
        let r = posix_spawnp(&pid, args[0], &actions, nil, argv, environ)
        guard r == 0 else {
            throw MultiprocExecutorError.startFailed("posix_spawn \(args[0]): \(String(cString: strerror(r)))")
        }
        if let stdin {
            // At most a page: it fits the pipe's buffer, so this write does not wait for the child.
            _ = stdin.withUnsafeBytes { write(fds[1], $0.baseAddress!, stdin.count) }
        }
        return pid
    }
}
