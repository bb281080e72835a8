import Foundation
import Logging
import PagodaDistributed
import PagodaEngine

/// The head's door for engine cores on other nodes (`--data-parallel-address:--data-parallel-rpc-port`, TCP):
/// accepts their connections, checks each hello with `RankAdmission` (refusals get a failure frame and a log
/// line), collects the ranks until all have joined (`waitForAll`), and afterwards hands a rank that comes back
/// to `onRejoin` (`DataParallelEngineClient.rejoin`). Every wait is bounded.
public final class RemoteRankAcceptor: @unchecked Sendable {
    public let address: EngineRPCAddress
    private let listener: EngineRPCListener
    private let admission: RankAdmission
    private let expected: [Int]
    private let logger: Logger
    /// Seconds a connection may take to send its hello.
    private let helloTimeout: Double
    private let liveness: EngineRPCLiveness
    private let lock = NSLock()
    /// Ranks that joined before the front-end started (taken by `waitForAll`).
    private var joined: [Int: EngineCoreRPCClient] = [:]
    /// Ranks whose hello is being accepted right now.
    private var reserved: Set<Int> = []
    /// After start-up: whether a rank is serving, and what to do with a rank that comes back.
    private var isServing: ((Int) -> Bool)?
    private var onRejoin: ((EngineCoreRPCClient) throws -> Void)?
    private var stopped = false

    /// Binds `address` (a TCP address) at once, so a busy port is a start-up error. A peer must prove `secret`
    /// (`PeerAuthentication`) before its hello is read; one that does not is logged and closed.
    /// `liveness`: heartbeats start as soon as a rank is admitted (it may wait for the others before serving).
    public init(
        address: EngineRPCAddress, secret: PeerSecret, admission: RankAdmission, liveness: EngineRPCLiveness, logger: Logger,
        helloTimeout: Double = 30
    ) throws {
        listener = try EngineRPCListener(address: address, secret: secret)
        self.address = listener.address
        self.admission = admission
        expected = (0..<admission.size).filter { !admission.localRanks.contains($0) }
        self.logger = logger
        self.helloTimeout = helloTimeout
        self.liveness = liveness
    }

    /// Starts accepting on a background thread (until `stop`).
    public func start() {
        let thread = Thread { [self] in
            while true {
                lock.lock(); let done = stopped; lock.unlock()
                if done { return }
                guard let c = try? listener.accept(timeout: 0.5) else { continue }
                let handshake = Thread { [self] in admit(c) }
                handshake.name = "dp-rank-handshake"
                handshake.start()
            }
        }
        thread.name = "dp-rank-acceptor"
        thread.start()
    }

    public func stop() { lock.lock(); stopped = true; lock.unlock() }

    /// Whether rank `r` is joined (or joining) and, once serving, not down.
    private func isLive(_ r: Int) -> Bool {
        if reserved.contains(r) || joined[r] != nil { return true }
        return isServing?(r) ?? false
    }

    private func admit(_ c: EngineRPCConnection) {
        let peer = c.peerIPv4Address ?? "?"
        c.setReceiveTimeout(helloTimeout)
        var rank: Int?
        let client: EngineCoreRPCClient
        do {
            client = try EngineCoreRPCClient(connection: c) { hello in
                lock.lock(); defer { lock.unlock() }
                if let reason = admission.refusal(hello, isLive: isLive) { return reason }
                reserved.insert(hello.dataParallelRank)
                rank = hello.dataParallelRank
                return nil
            }
        } catch {
            if let rank { lock.lock(); reserved.remove(rank); lock.unlock() }
            logger.error("refused an engine core from \(peer): \(error)")
            c.close()
            return
        }
        c.setReceiveTimeout(nil)
        client.startHeartbeats(liveness)
        let h = client.handshakeInfo
        lock.lock()
        reserved.remove(h.dataParallelRank)
        let rejoin = onRejoin
        if rejoin == nil { joined[h.dataParallelRank] = client }
        lock.unlock()
        let at = h.address.isEmpty ? peer : h.address
        guard let rejoin else {
            logger.info(
                "data-parallel rank \(h.dataParallelRank) joined from \(at) (pid \(h.pid)): \(h.numBlocks) KV blocks of \(h.blockSize) tokens"
            )
            return
        }
        do {
            try rejoin(client)
            logger.notice("data-parallel rank \(h.dataParallelRank) rejoined from \(at) (pid \(h.pid), \(h.numBlocks) KV blocks)")
        } catch {
            logger.error("data-parallel rank \(h.dataParallelRank) from \(at) could not rejoin: \(error)")
            client.shutdown(reason: "could not rejoin: \(error)")
        }
    }

    /// Waits until every remote rank has joined, logging the missing ones every `logInterval` seconds; after
    /// `timeout` seconds throws an error naming them. `check` runs about every 100 ms and may throw to give up.
    public func waitForAll(timeout: Double, logInterval: Double = 5, check: () throws -> Void = {}) throws -> [Int: EngineCoreRPCClient] {
        let started = Date()
        var lastLog = started
        while true {
            lock.lock()
            let missing = expected.filter { joined[$0] == nil }
            lock.unlock()
            if missing.isEmpty { break }
            let now = Date()
            if now.timeIntervalSince(started) >= timeout {
                throw ServeStartupError(
                    "data-parallel rank\(missing.count == 1 ? "" : "s") \(missing.map(String.init).joined(separator: ", ")) did not join within \(Int(timeout)) s (waiting at \(address); start them with --headless)"
                )
            }
            if now.timeIntervalSince(lastLog) >= logInterval {
                lastLog = now
                logger.info(
                    "waiting for data-parallel rank\(missing.count == 1 ? "" : "s") \(missing.map(String.init).joined(separator: ", ")) to join at \(address) (\(Int(timeout - now.timeIntervalSince(started))) s left)"
                )
            }
            try check()
            usleep(100_000)
        }
        lock.lock(); defer { lock.unlock() }
        let all = joined
        joined = [:]
        return all
    }

    /// From now on a rank that connects is live when `isServing` says so, and joins through `onRejoin`.
    public func serve(isServing: @escaping (Int) -> Bool, onRejoin: @escaping (EngineCoreRPCClient) throws -> Void) {
        lock.lock(); self.isServing = isServing; self.onRejoin = onRejoin; lock.unlock()
    }
}
