import Foundation
import PagodaDistributed
import PagodaEngine

/// Starts the engine core as a child process (`pagoda engine-core ...`), waits for it to connect
/// over the engine RPC and shake hands, and reports how it ended (vLLM's `CoreEngineProcManager`).
///
/// The child gets the front-end's RPC address; it loads the model, connects, and sends its hello.
/// If it exits first (bad model folder, out of memory) `start` throws with its exit status, never
/// waiting out a timeout.
public final class EngineCoreProcess: @unchecked Sendable {
    public let process: Process
    public let client: EngineCoreRPCClient
    private let listener: EngineRPCListener

    /// - Parameters:
    ///   - executable: the `pagoda` binary.
    ///   - arguments: the engine-core verb and its flags; `--rpc-address <address>` is appended.
    ///   - address: where the front-end listens.
    ///   - secret: the deployment's secret: the child gets it on its stdin, and must prove it when it connects.
    ///   - startupTimeout: seconds to wait for the handshake (model loading included).
    ///   - waiting: called about every 50 ms while the child loads (progress display).
    public init(
        executable: String, arguments: [String], address: EngineRPCAddress, secret: PeerSecret, startupTimeout: Double,
        waiting: () -> Void = {}
    ) throws {
        listener = try EngineRPCListener(address: address, secret: secret)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments + ["--rpc-address", listener.address.description] + ChildSecret.arguments
        p.standardInput = ChildSecret.pipe(secret)
        try p.run()
        process = p
        let connection: EngineRPCConnection
        do {
            connection = try listener.accept(timeout: startupTimeout) {
                waiting()
                if !p.isRunning { throw EngineRPCError.handshake("engine core exited during start-up (\(Self.describeExit(p)))") }
            }
            client = try EngineCoreRPCClient(connection: connection)
        } catch {
            if p.isRunning { p.terminate() }
            p.waitUntilExit()
            if case EngineRPCError.handshake = error { throw error }
            throw EngineRPCError.handshake("\(error); engine core: \(Self.describeExit(p))")
        }
    }

    public var pid: Int32 { process.processIdentifier }

    /// Waits up to `timeout` seconds for the child to exit and says how it ended.
    public func exitDescription(waiting timeout: Double) -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        return Self.describeExit(process)
    }

    /// Asks the engine core to shut down, then waits (and kills it after `timeout` seconds).
    public func stop(timeout: Double = 5) {
        client.shutdown()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            process.terminate()
            usleep(200_000)
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
    }

    /// How a child process ended ("exited with status 1", "killed by signal 9 (SIGKILL)").
    public static func describeExit(_ p: Process) -> String {
        if p.isRunning { return "still running (pid \(p.processIdentifier))" }
        switch p.terminationReason {
        case .exit: return "exited with status \(p.terminationStatus)"
        case .uncaughtSignal:
            let name =
                p.terminationStatus == SIGKILL
                ? " (SIGKILL)" : p.terminationStatus == SIGSEGV ? " (SIGSEGV)" : p.terminationStatus == SIGTERM ? " (SIGTERM)" : ""
            return "killed by signal \(p.terminationStatus)\(name)"
        @unknown default: return "ended (status \(p.terminationStatus))"
        }
    }
}

extension EngineCoreProcess {
    /// Starts one engine core per config at once (data-parallel ranks load in parallel) and waits for all.
    /// If any fails, the others are stopped and the first failure (naming its rank) is thrown.
    public static func startAll(configs: [EngineConfig], executable: String, startupTimeout: Double) throws -> [EngineCoreProcess] {
        let results = StartResults(count: configs.count)
        // One thread per rank, not `DispatchQueue.concurrentPerform`: that may run its iterations one after
        // another (on a loaded machine it did), and the ranks of a MoE model under expert parallelism load only
        // together (they join one group while loading), so rank 0's start would wait out rank 1's timeout.
        let group = DispatchGroup()
        for i in configs.indices {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                do {
                    let json = String(decoding: try JSONEncoder().encode(configs[i]), as: UTF8.self)
                    let socket = NSTemporaryDirectory() + "pagoda-engine-\(getpid())-\(i)-\(UInt32.random(in: 0...UInt32.max)).sock"
                    guard let secret = configs[i].internalSecret else {
                        throw EngineRPCError.handshake("no internal secret for the engine core (EngineConfig.internalSecret)")
                    }
                    let p = try EngineCoreProcess(
                        executable: executable, arguments: ["engine-core", "--engine-config-json", json],
                        address: .unix(path: socket), secret: secret, startupTimeout: startupTimeout)
                    results.set(i, .success(p))
                } catch {
                    results.set(i, .failure(error))
                }
            }
            thread.name = "pagoda-engine-start-\(i)"
            thread.start()
        }
        group.wait()  // each start ends by its own startup timeout
        let all = results.all
        let started = all.map { try? $0?.get() }
        let failures = all.enumerated().compactMap { i, r -> (Int, Error)? in
            if case .failure(let e)? = r { return (i, e) }
            return nil
        }
        if let (i, error) = failures.first {
            for p in started.compactMap({ $0 }) { p.stop() }
            throw configs.count > 1
                ? EngineRPCError.handshake("data-parallel rank \(configs[i].parallel.dataParallelRank): \(error)") : error
        }
        return started.map { $0! }
    }
}

/// Each rank's start, filled by its own thread under a lock.
private final class StartResults: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Result<EngineCoreProcess, Error>?]
    init(count: Int) { results = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ r: Result<EngineCoreProcess, Error>) {
        lock.lock()
        results[i] = r
        lock.unlock()
    }
    var all: [Result<EngineCoreProcess, Error>?] {
        lock.lock()
        defer { lock.unlock() }
        return results
    }
}
