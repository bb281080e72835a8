import Foundation
import PagodaDistributed
import XCTest

@testable import PagodaEngine

#if canImport(Glibc)
import Glibc
#endif

/// The multiprocess executor's TCP control channel (workers on other hosts): a peer without the secret is
/// refused before any frame is read, a peer whose host vanished is noticed within the keepalive bound, and a
/// TP=2 engine whose workers reach it only over TCP answers like one process and names a killed worker's rank.
final class MultiprocTCPControlTests: XCTestCase {
    let secret = try! PeerSecret(text: "ray2-control-channel-secret")

    /// One value handed from a thread to the test (the semaphore orders the write before the read).
    final class Handoff<T>: @unchecked Sendable { var value: T? }

    /// Runs `body` on a thread; returns a wait that gives its result (or nil after `timeout` s).
    func background<T>(_ body: @escaping () -> T) -> (Double) -> T? {
        let done = DispatchSemaphore(value: 0)
        let handoff = Handoff<T>()
        Thread {
            handoff.value = body()
            done.signal()
        }.start()
        return { timeout in done.wait(timeout: .now() + timeout) == .success ? handoff.value : nil }
    }

    func testAPeerWithoutTheSecretIsRefusedBeforeAnyFrame() throws {
        let listener = try MultiprocTCPControl.listen(host: "127.0.0.1", secret: secret)
        guard case .tcp(let host, let port) = listener.address else { return XCTFail("not TCP: \(listener.address)") }
        // A worker with another secret: the handshake fails on both sides.
        let other = try PeerSecret(text: "another-secret-of-another-deployment")
        let wrong = background { () -> String in
            do {
                _ = try MultiprocTCPControl.connect(listener.address, secret: other, timeout: 5)
                return "connected"
            } catch { return "\(error)" }
        }
        XCTAssertNil(try MultiprocTCPControl.accept(listener, timeout: 3, check: {}), "a peer with another secret was handed out")
        let answer = try XCTUnwrap(wrong(10))
        XCTAssertTrue(answer.contains("wrong secret"), answer)
        // A peer that sends a hello frame without the handshake: never handed out, its frame never read.
        let raw = try EngineRPCSocket.connect(to: .tcp(host: host, port: port), timeout: 5)
        defer { close(raw) }
        try MultiprocChannel(fd: dup(raw)).send(MultiprocHello(rank: 0, pid: getpid(), engineId: "x"))
        let started = Date()
        XCTAssertNil(try MultiprocTCPControl.accept(listener, timeout: 2, check: {}), "a peer without the handshake was handed out")
        XCTAssertLessThan(Date().timeIntervalSince(started), 8)
        // The right secret: the connection is handed out and carries frames.
        let right = background { () -> Bool in
            guard let ch = try? MultiprocTCPControl.connect(listener.address, secret: self.secret, timeout: 5) else { return false }
            return (try? ch.send(MultiprocHello(rank: 1, pid: 42, engineId: "engine-a"))) != nil
        }
        let ch = try XCTUnwrap(try MultiprocTCPControl.accept(listener, timeout: 10, check: {}))
        let hello = try ch.receive(MultiprocHello.self, timeout: 5)
        XCTAssertEqual(hello.rank, 1)
        XCTAssertEqual(hello.engineId, "engine-a")
        XCTAssertEqual(right(10), true)
    }

    /// A worker whose host vanishes sends neither FIN nor RST; keepalive must notice. The worker's socket is
    /// closed in TCP repair mode (the kernel then sends nothing), so only the engine's keepalive probe finds out.
    func testAVanishedPeerIsNoticedWithinTheKeepaliveBound() throws {
        let listener = try MultiprocTCPControl.listen(host: "127.0.0.1", secret: secret)
        // The worker's end as a bare socket (authenticated as a worker does), so that it can be closed silently.
        let worker = background { () -> Int32 in
            guard let fd = try? EngineRPCSocket.connect(to: listener.address, timeout: 5) else { return -1 }
            guard (try? PeerAuthentication.connect(fd: fd, secret: self.secret)) != nil else { close(fd); return -1 }
            return fd
        }
        let engineSide = try XCTUnwrap(try MultiprocTCPControl.accept(listener, timeout: 10, check: {}))
        let started = Date()  // the connection's last traffic: keepalive counts its idle time from here
        let workerFd = try XCTUnwrap(worker(10))
        XCTAssertGreaterThanOrEqual(workerFd, 0)
        usleep(500_000)  // every byte acknowledged: nothing is retransmitted, only a keepalive probe can find out
        var on: Int32 = 1
        let tcpRepair: Int32 = 19  // linux/tcp.h
        guard setsockopt(workerFd, Int32(IPPROTO_TCP), tcpRepair, &on, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            let why = String(cString: strerror(errno))
            close(workerFd)
            print("MultiprocTCPControlTests: skipped: TCP_REPAIR not permitted (\(why))")
            throw XCTSkip("TCP_REPAIR (a silent close) needs CAP_NET_ADMIN: \(why)")
        }
        close(workerFd)  // in repair mode: no FIN, no RST
        let outcome = background { () -> String in
            do {
                _ = try engineSide.receiveFrame()
                return "a frame"
            } catch { return "closed" }
        }
        let bound = MultiprocTCPControl.deadPeerSeconds + 5
        XCTAssertEqual(outcome(bound), "closed", "the vanished peer was not noticed within \(bound) s")
        let took = Date().timeIntervalSince(started)
        print("MultiprocTCPControlTests: vanished peer noticed after \(String(format: "%.1f", took)) s")
        XCTAssertLessThan(took, bound)
        // Earlier would mean the close was not silent (a FIN or RST), so keepalive was not what noticed it.
        XCTAssertGreaterThan(took, Double(MultiprocTCPControl.keepaliveIdleSeconds) - 0.5)
    }

    func config(tp: Int) -> EngineConfig {
        EngineConfig(
            model: ModelLoadConfig(
                path: ParallelConformanceTests.conformanceModels + "/tiny-llama3", dtype: .float32, maxModelLen: 256, threads: 1),
            cache: CacheConfig(blockSize: 16, numBlocksOverride: 64),
            scheduler: SchedulerConfig(maxNumSeqs: 4, maxNumBatchedTokens: 64),
            parallel: ParallelConfig(tensorParallelSize: tp, distributedExecutorBackend: tp > 1 ? .mp : .uni), seed: 0)
    }

    func generate(_ core: EngineCore, maxTokens: Int) throws -> [[Int]] {
        var s = SamplingParams.greedy
        s.maxTokens = maxTokens
        s.ignoreEOS = true
        let prompts = [[1, 2, 3, 4], [5, 6, 7], [9, 8, 7, 6, 5]]
        for (i, p) in prompts.enumerated() {
            try core.addRequest(EngineRequest(requestId: "r\(i)", promptTokenIds: p, sampling: s, eosTokenIds: [], arrivalTime: 0))
        }
        var out = Array(repeating: [Int](), count: prompts.count)
        var steps = 0
        while core.hasUnfinishedRequests && steps < 500 {
            for o in try core.step() { out[Int(o.requestId.dropFirst())!] += o.newTokenIds }
            steps += 1
        }
        return out
    }

    /// Real `pagoda worker` processes that get `--engine-address` and the secret on stdin: tokens equal one
    /// process, the workers hold no Unix socket to the engine, and a killed worker is named by its rank.
    func testTensorParallelOverTheTCPControlChannel() throws {
        let single = try EngineCore(config: config(tp: 1))
        let expected = try generate(single, maxTokens: 8)
        single.shutdown()

        var c = config(tp: 2)
        c.parallel.workerControlHost = "127.0.0.1"
        let executor = try MultiprocExecutor(config: c)
        let core = try EngineCore(config: c, executor: executor)
        defer { core.shutdown() }
        for pid in executor.workerPids {
            let argv = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8))?.split(separator: "\0").map(String.init) ?? []
            XCTAssertTrue(argv.contains("--engine-address"), "\(argv)")
            XCTAssertFalse(argv.contains("--engine-socket"), "\(argv)")
            XCTAssertTrue(argv.contains(executor.engineId), "\(argv)")
            XCTAssertFalse(argv.contains { $0.contains(secret.text) }, "the secret is on a command line")
        }
        XCTAssertEqual(try generate(core, maxTokens: 8), expected, "TP=2 over the TCP control channel differs from one process")

        var s = SamplingParams.greedy
        s.maxTokens = 200
        s.ignoreEOS = true
        try core.addRequest(EngineRequest(requestId: "long", promptTokenIds: [1, 2, 3], sampling: s, eosTokenIds: [], arrivalTime: 0))
        _ = try core.step()
        kill(executor.workerPids[1], SIGKILL)
        let started = Date()
        var caught: Error?
        while caught == nil && Date().timeIntervalSince(started) < 30 {
            do { _ = try core.step() } catch { caught = error }
        }
        guard case .workerDied(let rank, _)? = caught as? MultiprocExecutorError else {
            return XCTFail("expected workerDied, got \(String(describing: caught))")
        }
        XCTAssertEqual(rank, 1)
        XCTAssertLessThan(Date().timeIntervalSince(started), 10)
    }

    /// The engine refuses a worker whose hello names another engine: the start-up fails at once naming the
    /// rank (the worker's command line is given a wrong `--engine-id` by its launch prefix; the last one wins).
    func testTheEngineRefusesAWorkerOfAnotherEngine() throws {
        var c = config(tp: 2)
        c.parallel.workerControlHost = "127.0.0.1"
        c.parallel.workerLaunchPrefix = ["sh", "-c", "exec \"$@\" --engine-id engine-of-someone-else", "sh"]
        let started = Date()
        XCTAssertThrowsError(try MultiprocExecutor(config: c)) { error in
            guard case .workerDied(_, let detail)? = error as? MultiprocExecutorError else {
                return XCTFail("expected workerDied, got \(error)")
            }
            XCTAssertTrue(detail.contains("before connecting"), detail)
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 60)
    }

    /// A worker checks the engine's identity in its `initialize`: one from another engine ends it with an error
    /// it reports, before it loads anything.
    func testAWorkerRefusesTheInitializeOfAnotherEngine() throws {
        let listener = try MultiprocTCPControl.listen(host: "127.0.0.1", secret: secret)
        let worker = Process()
        worker.executableURL = URL(fileURLWithPath: try MultiprocExecutor.workerExecutable(nil))
        worker.arguments = [
            "worker", "--engine-address", listener.address.description, "--rank", "1", "--engine-id", "engine-a",
            "--internal-secret-file", "/dev/stdin",
        ]
        let stdin = Pipe()
        worker.standardInput = stdin
        try worker.run()
        defer { if worker.isRunning { worker.terminate() } }
        stdin.fileHandleForWriting.write(Data((secret.text + "\n").utf8))
        try stdin.fileHandleForWriting.close()
        let ch = try XCTUnwrap(try MultiprocTCPControl.accept(listener, timeout: 30, check: {}))
        let hello = try ch.receive(MultiprocHello.self, timeout: 5)
        XCTAssertEqual(hello.rank, 1)
        XCTAssertEqual(hello.engineId, "engine-a")
        XCTAssertEqual(hello.pid, worker.processIdentifier)
        try ch.send(
            MultiprocRequest.initialize(
                MultiprocWorkerInit(
                    config: config(tp: 2), tensorGroupAddress: "single", pipelineGroupAddress: "single", secret: secret,
                    engineId: "engine-b")))
        guard case .failed(let message, _) = try ch.receive(MultiprocReply.self, timeout: 30) else {
            return XCTFail("expected a failure reply")
        }
        XCTAssertTrue(message.contains("the engine is engine-b, not engine-a"), message)
        worker.waitUntilExit()
        XCTAssertEqual(worker.terminationStatus, 1)
    }
}
