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
        let lock = NSLock()
        var started = [EngineCoreProcess?](repeating: nil, count: configs.count)
        var failures: [(Int, Error)] = []
        DispatchQueue.concurrentPerform(iterations: configs.count) { i in
            do {
                let json = String(decoding: try JSONEncoder().encode(configs[i]), as: UTF8.self)
                let socket = NSTemporaryDirectory() + "pagoda-engine-\(getpid())-\(i)-\(UInt32.random(in: 0...UInt32.max)).sock"
                guard let secret = configs[i].internalSecret else {
                    throw EngineRPCError.handshake("no internal secret for the engine core (EngineConfig.internalSecret)")
                }
                let p = try EngineCoreProcess(
                    executable: executable, arguments: ["engine-core", "--engine-config-json", json],
                    address: .unix(path: socket), secret: secret, startupTimeout: startupTimeout)
                lock.lock(); started[i] = p; lock.unlock()
            } catch {
                lock.lock(); failures.append((i, error)); lock.unlock()
            }
        }
        if let (i, error) = failures.min(by: { $0.0 < $1.0 }) {
            for p in started.compactMap({ $0 }) { p.stop() }
            throw configs.count > 1
                ? EngineRPCError.handshake("data-parallel rank \(configs[i].parallel.dataParallelRank): \(error)") : error
        }
        return started.map { $0! }
    }
}
