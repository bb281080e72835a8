import Foundation
import XCTest

@testable import PagodaEngine

#if canImport(Glibc)
import Glibc
#endif

/// Tensor parallelism across "hosts": the two workers of a TP=2 engine run in two network namespaces
/// joined by a veth pair (10.213.7.1 and 10.213.7.2), started through the worker launch prefix
/// (`ip netns exec …`) and meeting over TCP at the worker hosts; their tokens equal one process's.
/// Skips, saying why, where network namespaces cannot be made (not root, no CAP_NET_ADMIN, no `ip`).
/// The namespaces (and the veth pair inside them) are removed on every exit path of the test.
final class MultiHostTCPTests: XCTestCase {
    static let ipCandidates = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]

    @discardableResult
    func ip(_ args: [String]) -> (status: Int32, output: String) {
        guard let exe = Self.ipCandidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            return (127, "ip not found")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        do { try p.run() } catch { return (127, "\(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Namespaces from earlier runs whose test process is gone (a run killed before its clean-up).
    func removeStaleNamespaces() {
        for line in ip(["netns", "list"]).output.split(separator: "\n") {
            let name = String(line.split(separator: " ").first ?? "")
            guard name.hasPrefix("pgd"), let dash = name.firstIndex(of: "-"),
                  let pid = Int32(name[name.index(name.startIndex, offsetBy: 3)..<dash]) else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { ip(["netns", "del", name]) }
        }
    }

    func netNamespace(of pid: Int32) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/net")
    }

    func testTensorParallelWorkersInTwoNetworkNamespaces() throws {
        guard Self.ipCandidates.contains(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            print("MultiHostTCPTests: skipped: the ip command (iproute2) is not installed")
            throw XCTSkip("the ip command (iproute2) is not installed")
        }
        removeStaleNamespaces()
        let pid = getpid()
        let ns = ["pgd\(pid)-0", "pgd\(pid)-1"]
        let addrs = ["10.213.7.1", "10.213.7.2"]
        let probe = ip(["netns", "add", ns[0]])
        guard probe.status == 0 else {
            let why = getuid() == 0 ? "ip netns add failed (no CAP_NET_ADMIN?): \(probe.output)" : "not root: \(probe.output)"
            print("MultiHostTCPTests: skipped: \(why)")
            throw XCTSkip("network namespaces are not permitted here: \(why)")
        }
        defer { for n in ns { ip(["netns", "del", n]) } }
        for (cmd, what) in [
            (["netns", "add", ns[1]], "add namespace"),
            // The pair is created inside the namespaces: nothing is left in the host namespace.
            (["link", "add", "veth0", "netns", ns[0], "type", "veth", "peer", "name", "veth1", "netns", ns[1]], "veth pair"),
            (["-n", ns[0], "addr", "add", addrs[0] + "/24", "dev", "veth0"], "address 0"),
            (["-n", ns[1], "addr", "add", addrs[1] + "/24", "dev", "veth1"], "address 1"),
            (["-n", ns[0], "link", "set", "veth0", "up"], "up 0"), (["-n", ns[1], "link", "set", "veth1", "up"], "up 1"),
            (["-n", ns[0], "link", "set", "lo", "up"], "lo 0"), (["-n", ns[1], "link", "set", "lo", "up"], "lo 1"),
        ] {
            let r = ip(cmd)
            guard r.status == 0 else {
                print("MultiHostTCPTests: skipped: \(what) failed: \(r.output)")
                throw XCTSkip("\(what) failed: \(r.output)")
            }
        }
        let ping = ip(["netns", "exec", ns[0], "ping", "-c", "1", "-W", "2", addrs[1]])
        if ping.status == 127 { print("MultiHostTCPTests: no ping; relying on the engine's own TCP rendezvous") }

        let dir = ParallelConformanceTests.conformanceModels + "/tiny-llama3"
        let ref = try JSONDecoder().decode(ParallelConformanceTests.Reference.self,
                                           from: Data(contentsOf: URL(fileURLWithPath: dir + "/reference.json")))
        let prompts = ref.prompts.prefix(4).map(\.prompt_ids)
        func config(tp: Int) -> EngineConfig {
            EngineConfig(
                model: ModelLoadConfig(path: dir, dtype: .float32, maxModelLen: 256, threads: 1),
                cache: CacheConfig(blockSize: 16, numBlocksOverride: 64),
                scheduler: SchedulerConfig(maxNumSeqs: 8, maxNumBatchedTokens: 128),
                parallel: ParallelConfig(tensorParallelSize: tp, distributedExecutorBackend: tp > 1 ? .mp : .uni), seed: 0)
        }
        func run(_ core: EngineCore) throws -> [[Int]] {
            var s = SamplingParams.greedy
            s.maxTokens = 12
            s.ignoreEOS = true
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
        let single = try EngineCore(config: config(tp: 1))
        let expected = try run(single)
        single.shutdown()

        var c = config(tp: 2)
        c.parallel.workerLaunchPrefix = ["ip", "netns", "exec", "pgd\(pid)-{rank}"]
        c.parallel.workerHosts = addrs
        c.parallel.communicatorTimeoutSeconds = 60
        let executor = try MultiprocExecutor(config: c)
        let core = try EngineCore(config: c, executor: executor)
        defer { core.shutdown() }
        // The workers really live in the two namespaces, not in ours.
        let mine = netNamespace(of: getpid())
        let theirs = executor.workerPids.map { netNamespace(of: $0) }
        XCTAssertNotNil(theirs[0])
        XCTAssertNotEqual(theirs[0], mine)
        XCTAssertNotEqual(theirs[1], mine)
        XCTAssertNotEqual(theirs[0], theirs[1])
        let got = try run(core)
        XCTAssertEqual(got, expected, "TP=2 across namespaces differs from one process")
        XCTAssertTrue(got.allSatisfy { $0.count == 12 })
    }

    /// A host list that does not name every worker is a clear start-up error (no worker is started).
    func testWorkerHostsMustNameEveryRank() throws {
        let c = EngineConfig(model: ModelLoadConfig(path: ParallelConformanceTests.conformanceModels + "/tiny-llama3", dtype: .float32, threads: 1),
                             parallel: ParallelConfig(tensorParallelSize: 2, distributedExecutorBackend: .mp, workerHosts: ["10.213.7.1"]))
        XCTAssertThrowsError(try c.validate()) { error in
            XCTAssertEqual("\(error)", "invalid --worker-hosts: must list 2 addresses (one per worker rank, comma-separated), got '10.213.7.1'")
        }
        XCTAssertThrowsError(try MultiprocExecutor(config: c)) { error in
            XCTAssertTrue("\(error)".contains("--worker-hosts: must list 2 addresses"), "\(error)")
        }
    }
}
