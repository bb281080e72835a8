import AsyncHTTPClient
import Foundation
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Write end of the launcher's signal self-pipe (a global: a C signal handler can capture nothing).
private var launcherSignalPipe: Int32 = -1

/// Why `pagoda launch` stopped with an error, as one line for the user.
public struct LaunchError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Runs a `LaunchPlan`: starts every local rank, prefixes its output with its rank, waits until all
/// answer `GET /health`, prints the proxy command, and stops them all on SIGINT/SIGTERM or as soon as one dies.
///
/// Children never outlive the launcher: they are stopped (SIGTERM, then SIGKILL after `shutdownTimeout`)
/// on every exit path, and where `setpriv` exists each is started under `setpriv --pdeathsig TERM`, so the
/// kernel sends it SIGTERM if the launcher dies without cleaning up (even by SIGKILL). The parent-death
/// signal is tied to the spawning thread, hence the launcher spawns from its own thread that lives until
/// the children are gone.
public final class RankLauncher: @unchecked Sendable {
    public struct Options: Sendable {
        /// The serve command, program and leading arguments (default: this executable + `serve`).
        public var serveCommand: [String]
        public var startupTimeout: Double = 600
        public var shutdownTimeout: Double = 15
        public var healthPollInterval: Double = 0.5
        /// The environment the ranks start with (the command line passes its own; `PYTHONUNBUFFERED=1` is added).
        public var environment: [String: String] = [:]

        public init(serveCommand: [String], environment: [String: String] = [:]) {
            self.serveCommand = serveCommand
            self.environment = environment
        }
    }

    private enum Event {
        case exited(rank: Int, reason: String)
        case signal(Int32)
    }

    private struct Child {
        let rank: LaunchPlan.Rank
        let process: Process
    }

    public let plan: LaunchPlan
    public let options: Options
    private let condition = NSCondition()
    private var events: [Event] = []
    private var children: [Child] = []
    private let outputLock = NSLock()

    public init(plan: LaunchPlan, options: Options) {
        self.plan = plan
        self.options = options
    }

    /// Blocks until the ranks are stopped; returns the exit status for the launcher (0 after a signal, 1 when a rank died).
    public func run() throws -> Int32 {
        try plan.validate()
        let taken = plan.ranks.compactMap { rank in
            PortProbe.bindError(host: plan.host, port: rank.port).map { "\(rank.port) (rank \(rank.rank): \($0))" }
        }
        if !taken.isEmpty {
            throw LaunchError(
                "cannot start: port(s) already taken on \(plan.host): " + taken.joined(separator: ", ")
                    + "; choose free ones with --start-port")
        }
        final class Outcome: @unchecked Sendable { var result: Result<Int32, Error> = .success(0) }
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread { [self] in
            // Children inherit the spawning thread's signal mask, and Foundation threads start with most
            // signals blocked: a rank spawned from here would never see SIGTERM. Unblock everything first.
            var none = sigset_t()
            sigemptyset(&none)
            pthread_sigmask(SIG_SETMASK, &none, nil)
            outcome.result = Result { try self.supervise() }
            done.signal()
        }
        thread.name = "pagoda-launch"
        thread.start()
        done.wait()
        return try outcome.result.get()
    }

    // MARK: Supervision (on the launcher thread)

    private func supervise() throws -> Int32 {
        installSignalHandlers()
        for rank in plan.ranks {
            do {
                try spawn(rank)
            } catch {
                stopAll()
                throw LaunchError("cannot start rank \(rank.rank): \(error)")
            }
        }
        say("started \(children.count) rank(s): "
            + children.map { "rank \($0.rank.rank) pid \($0.process.processIdentifier) port \($0.rank.port)" }
                .joined(separator: ", "))

        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { try? client.syncShutdown() }
        let deadline = Date().addingTimeInterval(options.startupTimeout)
        var healthy = Set<Int>()
        while healthy.count < children.count {
            if let status = handle(waitForEvent(timeout: 0)) { return status }
            for child in children where !healthy.contains(child.rank.rank) {
                if isHealthy(child.rank, client: client) {
                    healthy.insert(child.rank.rank)
                    say("rank \(child.rank.rank) is healthy on port \(child.rank.port)")
                }
            }
            if healthy.count == children.count { break }
            if Date() > deadline {
                say("ranks not healthy after \(Int(options.startupTimeout)) s: "
                    + children.filter { !healthy.contains($0.rank.rank) }.map { "rank \($0.rank.rank)" }
                        .joined(separator: ", ") + "; stopping all")
                stopAll()
                return 1
            }
            if let status = handle(waitForEvent(timeout: options.healthPollInterval)) { return status }
        }
        say("all \(children.count) rank(s) healthy. Front them with:\n  \(plan.proxyCommand())")
        while true {
            if let status = handle(waitForEvent(timeout: nil)) { return status }
        }
    }

    /// Acts on an event; returns the launcher's exit status once everything is stopped.
    private func handle(_ event: Event?) -> Int32? {
        switch event {
        case nil:
            return nil
        case .signal(let signal):
            say("received \(signal == SIGINT ? "SIGINT" : "SIGTERM"); stopping all ranks")
            stopAll()
            return 0
        case .exited(let rank, let reason):
            // A Ctrl-C reaches the children too: if a signal is on its way, this exit is part of that stop.
            if case .signal(let signal)? = waitForEvent(timeout: 0.2, matching: { if case .signal = $0 { true } else { false } }) {
                return handle(.signal(signal))
            }
            say("rank \(rank) \(reason); stopping the other ranks")
            stopAll()
            return 1
        }
    }

    private func isHealthy(_ rank: LaunchPlan.Rank, client: HTTPClient) -> Bool {
        let url = "http://\(plan.reachableHost.contains(":") ? "[\(plan.reachableHost)]" : plan.reachableHost):\(rank.port)/health"
        guard let response = try? client.get(url: url, deadline: .now() + .seconds(2)).wait() else { return false }
        return response.status.code == 200
    }

    // MARK: Processes

    private func spawn(_ rank: LaunchPlan.Rank) throws {
        let process = Process()
        var command = options.serveCommand + rank.arguments
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") {
            command = ["/usr/bin/setpriv", "--pdeathsig", "TERM", "--"] + command
        }
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        var environment = options.environment
        environment["PYTHONUNBUFFERED"] = "1"
        process.environment = environment
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        relay(out.fileHandleForReading, to: FileHandle.standardOutput, rank: rank.rank)
        relay(err.fileHandleForReading, to: FileHandle.standardError, rank: rank.rank)
        process.terminationHandler = { [weak self] process in
            let reason: String
            let pid = process.processIdentifier
            if process.terminationReason == .uncaughtSignal {
                reason = "(pid \(pid), port \(rank.port)) was killed by signal \(process.terminationStatus)"
                    + Self.signalName(process.terminationStatus)
            } else {
                reason = "(pid \(pid), port \(rank.port)) exited with status \(process.terminationStatus)"
            }
            self?.post(.exited(rank: rank.rank, reason: reason))
        }
        try process.run()
        children.append(Child(rank: rank, process: process))
    }

    private static func signalName(_ signal: Int32) -> String {
        switch signal {
        case SIGKILL: return " (SIGKILL)"
        case SIGTERM: return " (SIGTERM)"
        case SIGINT: return " (SIGINT)"
        case SIGSEGV: return " (SIGSEGV)"
        case SIGABRT: return " (SIGABRT)"
        case SIGILL: return " (SIGILL)"
        case SIGBUS: return " (SIGBUS)"
        default: return ""
        }
    }

    private func relay(_ handle: FileHandle, to sink: FileHandle, rank: Int) {
        // readabilityHandler calls for one handle never overlap, so the prefixer needs no lock of its own.
        final class Box: @unchecked Sendable { var prefixer: LinePrefixer; init(_ p: LinePrefixer) { prefixer = p } }
        let box = Box(LinePrefixer(prefix: "[rank \(rank)] "))
        let lock = outputLock
        handle.readabilityHandler = { handle in
            let data = handle.availableData
            let bytes = data.isEmpty ? box.prefixer.finish() : box.prefixer.feed(data)
            if data.isEmpty { handle.readabilityHandler = nil }
            guard !bytes.isEmpty else { return }
            lock.lock()
            sink.write(Data(bytes))
            lock.unlock()
        }
    }

    /// SIGTERM to every live rank, SIGKILL to any still alive after `shutdownTimeout`, then reap them all.
    private func stopAll() {
        let running = children.filter(\.process.isRunning)
        for child in running { kill(child.process.processIdentifier, SIGTERM) }
        let deadline = Date().addingTimeInterval(options.shutdownTimeout)
        while Date() < deadline, running.contains(where: \.process.isRunning) {
            usleep(20_000)
        }
        for child in running where child.process.isRunning {
            say("rank \(child.rank.rank) (pid \(child.process.processIdentifier)) did not stop in \(Int(options.shutdownTimeout)) s; killing it")
            kill(child.process.processIdentifier, SIGKILL)
        }
        for child in children { child.process.waitUntilExit() }
        if !running.isEmpty { say("all ranks stopped") }
    }

    // MARK: Events

    /// SIGINT/SIGTERM reach the supervisor through a self-pipe. A real handler (not SIG_IGN plus a dispatch
    /// source) on purpose: an ignored signal stays ignored across exec, so the ranks would ignore SIGTERM too,
    /// while a handler is reset to the default in the child.
    private func installSignalHandlers() {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        launcherSignalPipe = fds[1]
        let handler: @convention(c) (Int32) -> Void = { sig in
            var byte = UInt8(truncatingIfNeeded: sig)
            _ = write(launcherSignalPipe, &byte, 1)
        }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
        let readFD = fds[0]
        let reader = Thread { [weak self] in
            var byte: UInt8 = 0
            while read(readFD, &byte, 1) == 1 {
                self?.post(.signal(Int32(byte)))
            }
        }
        reader.name = "pagoda-launch-signals"
        reader.start()
    }

    private func post(_ event: Event) {
        condition.lock()
        events.append(event)
        condition.broadcast()
        condition.unlock()
    }

    /// Takes the first event that `matching` accepts, waiting up to `timeout` seconds (nil: forever).
    private func waitForEvent(timeout: Double?, matching: (Event) -> Bool = { _ in true }) -> Event? {
        condition.lock()
        defer { condition.unlock() }
        let deadline = timeout.map { Date().addingTimeInterval($0) }
        while true {
            if let index = events.firstIndex(where: matching) { return events.remove(at: index) }
            if let deadline {
                if Date() >= deadline || !condition.wait(until: deadline) {
                    if let index = events.firstIndex(where: matching) { return events.remove(at: index) }
                    return nil
                }
            } else {
                condition.wait()
            }
        }
    }

    private func say(_ message: String) {
        outputLock.lock()
        FileHandle.standardOutput.write(Data(("pagoda launch: " + message + "\n").utf8))
        outputLock.unlock()
    }
}
