import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One conversation with the Ray helper (`pagoda_ray.py session`): a child process that holds this server's
/// placement groups and actors in the cluster. Requests go in on its stdin, events come back on its stdout
/// (`RayRequest`, `RayEvent`); a request waits for its answer at most a bounded time. Process exits and actor
/// deaths arrive at any time and go to `onExit`. When this process dies the helper reads the end of its stdin
/// and removes everything it made, as `shutdown` does.
public final class RaySession: @unchecked Sendable {
    /// The head node's address as the helper reported it (the node this server runs on).
    public private(set) var headIP = ""
    /// The cluster's nodes when the helper connected, this one first.
    public private(set) var nodes: [RayNode] = []
    private let process: Process
    private let input: FileHandle
    private let lock = NSCondition()
    private var answers: [RayEvent] = []
    private var ended = false
    private var exitHandler: ((Int, String) -> Void)?
    private var pendingExits: [(Int, String)] = []
    private var isShutDown = false

    /// Starts the helper and waits (up to `connectTimeout` s) until it is connected to the cluster.
    public init(settings: RaySettings, connectTimeout: Double = 60) throws {
        let command = try settings.helperCommand(["session"])
        signal(SIGPIPE, SIG_IGN)  // a helper that died is an error on write, not the end of this process
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = command
        let stdinPipe = Pipe()
        let stdoutPipe = Pipe()
        process.standardInput = stdinPipe
        process.standardOutput = stdoutPipe
        do { try process.run() } catch {
            throw RayError.helper("cannot start \(command.joined(separator: " ")): \(error)")
        }
        input = stdinPipe.fileHandleForWriting
        let fd = stdoutPipe.fileHandleForReading.fileDescriptor
        let reader = Thread { [unowned self] in self.readEvents(fd: fd) }
        reader.name = "ray-helper-reader"
        reader.start()
        let first: RayEvent
        do { first = try nextAnswer(timeout: connectTimeout, what: "connecting to the Ray cluster") } catch {
            terminate()
            throw error
        }
        switch first {
        case .connected(_, let ip, let n):
            headIP = ip
            nodes = n
        case .error(let message):
            terminate()
            throw RayError.helper(message)
        default:
            terminate()
            throw RayError.helper("unexpected first event from the helper: \(first)")
        }
    }

    /// Calls `handler(rank, reason)` for every process that ends or actor that dies (also those reported before).
    public func onExit(_ handler: @escaping (Int, String) -> Void) {
        lock.lock()
        exitHandler = handler
        let pending = pendingExits
        pendingExits = []
        lock.unlock()
        for (r, why) in pending { handler(r, why) }
    }

    /// Reserves the placement groups (one per rank); a placement the cluster cannot satisfy within
    /// `timeoutSeconds` is a `RayError.placement` naming what is missing.
    public func place(
        job: String, ranks: Int, firstRank: Int = 0, localRanks: Int?, bundlesPerRank: Int, bundle: [String: Double],
        strategy: RayPackStrategy, timeoutSeconds: Double
    ) throws -> [RayPlacedRank] {
        let answer = try request(
            .place(
                job: job, ranks: ranks, firstRank: firstRank, localRanks: localRanks, bundlesPerRank: bundlesPerRank, bundle: bundle,
                strategy: strategy, timeoutSeconds: timeoutSeconds), timeout: timeoutSeconds + 30, what: "placing \(ranks) rank(s)")
        switch answer {
        case .placed(let ranks): return ranks
        case .error(let message): throw RayError.placement(message)
        default: throw RayError.helper("unexpected answer to place: \(answer)")
        }
    }

    /// Starts `argv` in an actor in `rank`'s placement group, `environment` added to the actor's; returns its
    /// pid and node.
    public func start(
        job: String, rank: Int, argv: [String], environment: [String: String] = [:], timeout: Double = 150
    ) throws -> (pid: Int, nodeIP: String) {
        let answer = try request(
            .start(job: job, rank: rank, argv: argv, environment: environment), timeout: timeout, what: "starting rank \(rank)")
        switch answer {
        case .started(_, let pid, let ip): return (pid, ip)
        case .error(let message): throw RayError.helper(message)
        default: throw RayError.helper("unexpected answer to start: \(answer)")
        }
    }

    /// Stops the actors and removes the placement groups (waiting up to `timeout` s), then ends the helper.
    /// Returns the helper's count of what it removed (nil if it did not answer).
    @discardableResult
    public func shutdown(timeout: Double = 30) -> (actors: Int, placementGroups: Int)? {
        lock.lock()
        if isShutDown { lock.unlock(); return nil }
        isShutDown = true
        lock.unlock()
        var result: (Int, Int)?
        if let answer = try? request(.shutdown, timeout: timeout, what: "shutting down"), case .stopped(let a, let p) = answer {
            result = (a, p)
        }
        terminate()
        return result
    }

    deinit { if !isShutDown { _ = shutdown() } }

    // MARK: The pipe

    private func request(_ r: RayRequest, timeout: Double, what: String) throws -> RayEvent {
        var line = try r.encoded()
        line.append(0x0A)
        lock.lock()
        let gone = ended
        lock.unlock()
        if gone { throw RayError.helper("the helper has exited") }
        do { try input.write(contentsOf: line) } catch { throw RayError.helper("the helper does not read its requests: \(error)") }
        return try nextAnswer(timeout: timeout, what: what)
    }

    private func nextAnswer(timeout: Double, what: String) throws -> RayEvent {
        let deadline = Date().addingTimeInterval(timeout)
        lock.lock()
        defer { lock.unlock() }
        while answers.isEmpty {
            if ended { throw RayError.helper("the helper exited while \(what) (its messages are on stderr)") }
            if !lock.wait(until: deadline) && answers.isEmpty {
                throw RayError.timeout("no answer from the helper within \(Int(timeout)) s while \(what)")
            }
        }
        return answers.removeFirst()
    }

    private func readEvents(fd: Int32) {
        var pending = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            pending.append(contentsOf: buffer[0..<n])
            while let nl = pending.firstIndex(of: 0x0A) {
                let line = pending[pending.startIndex..<nl]
                pending = Data(pending[(nl + 1)...])
                guard !line.isEmpty else { continue }
                deliver(line: Data(line))
            }
        }
        lock.lock()
        ended = true
        lock.broadcast()
        lock.unlock()
    }

    private func deliver(line: Data) {
        let event: RayEvent
        do { event = try RayEvent(line: line) } catch { event = .error("\(error)") }
        lock.lock()
        if case .exited(let rank, let reason) = event {
            let handler = exitHandler
            if handler == nil { pendingExits.append((rank, reason)) }
            lock.unlock()
            handler?(rank, reason)
            return
        }
        answers.append(event)
        lock.broadcast()
        lock.unlock()
    }

    private func terminate() {
        try? input.close()
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}
