import Foundation
import PagodaDistributed

#if canImport(Glibc)
import Glibc
#endif

/// What the multiprocess executor tells a worker process, over the worker's control socket (Unix or TCP).
enum MultiprocRequest: Codable {
    /// First message: the engine's configuration and where this worker's groups meet.
    case initialize(MultiprocWorkerInit)
    /// Reply `.ok`.
    case initializeCache(numBlocks: Int)
    /// Run one step; only the driver replies (`.output`), a failing worker replies `.failed`.
    case execute(SchedulerOutput)
    /// Exit cleanly; no reply.
    case shutdown
}

/// What a worker answers.
enum MultiprocReply: Codable {
    /// The shard is loaded; `kvCacheBytesPerBlock` is this worker's share at the configured block size.
    case ready(ModelInfo)
    case ok
    case output(ModelRunnerOutput)
    /// The worker hit an error and exits. `blamedRank`: the peer whose death caused it, when known.
    case failed(message: String, blamedRank: Int?)
}

/// A worker's first frame on its socket: its rank (from its command line), its pid, and the identity of
/// the engine it was started for (`--engine-id`), which the engine checks against its own.
struct MultiprocHello: Codable {
    var rank: Int
    var pid: Int32
    var engineId: String
}

/// Everything a worker needs besides its rank (given on the command line); the parallel settings
/// (collective timeout, layer partition, …) travel inside `config.parallel`.
struct MultiprocWorkerInit: Codable {
    var config: EngineConfig
    /// Address of this worker's tensor-parallel group and pipeline group (`CommunicatorAddress` text).
    var tensorGroupAddress: String
    var pipelineGroupAddress: String
    /// The secret of the TCP groups' connections (`config` never carries it); this socket is private to
    /// the engine and its workers (a TCP control channel proved the same secret before any message).
    var secret: PeerSecret
    /// The engine's identity; the worker checks it against its `--engine-id`.
    var engineId: String
}

/// Length-prefixed JSON frames on a stream socket: `[u32 little-endian length][JSON]`.
/// Blocking I/O; the executor polls before reading so it never blocks on a dead worker.
final class MultiprocChannel {
    let fd: Int32
    private var header = [UInt8](repeating: 0, count: 4)

    init(fd: Int32) { self.fd = fd }
    deinit { close(fd) }

    struct Closed: Error {}

    func send<T: Encodable>(_ value: T) throws {
        let body = try JSONEncoder().encode(value)
        try sendFrame(body)
    }

    func sendFrame(_ body: Data) throws {
        var n = UInt32(body.count).littleEndian
        try withUnsafeBytes(of: &n) { try writeAll($0.baseAddress!, 4) }
        try body.withUnsafeBytes { try writeAll($0.baseAddress!, body.count) }
    }

    /// No whole frame arrived within the deadline of a bounded `receive`.
    struct TimedOut: Error {}

    /// The next frame decoded; with `timeout` (seconds), `TimedOut` when it is not all there by then.
    func receive<T: Decodable>(_ type: T.Type, timeout: Double? = nil) throws -> T {
        let body = try receiveFrame(deadline: timeout.map { Date().addingTimeInterval($0) })
        return try JSONDecoder().decode(type, from: body)
    }

    func receiveFrame(deadline: Date? = nil) throws -> Data {
        try header.withUnsafeMutableBytes { try readAll($0.baseAddress!, 4, deadline: deadline) }
        let n = Int(UInt32(header[0]) | UInt32(header[1]) << 8 | UInt32(header[2]) << 16 | UInt32(header[3]) << 24)
        guard n <= 1 << 30 else { throw Closed() }
        var body = Data(count: n)
        if n > 0 { try body.withUnsafeMutableBytes { try readAll($0.baseAddress!, n, deadline: deadline) } }
        return body
    }

    private func writeAll(_ p: UnsafeRawPointer, _ n: Int) throws {
        var off = 0
        while off < n {
            let r = Glibc.send(fd, p + off, n - off, Int32(MSG_NOSIGNAL))
            if r < 0 { if errno == EINTR { continue }; throw Closed() }
            off += r
        }
    }

    private func readAll(_ p: UnsafeMutableRawPointer, _ n: Int, deadline: Date?) throws {
        var off = 0
        while off < n {
            if let deadline {
                let left = deadline.timeIntervalSinceNow
                if left <= 0 { throw TimedOut() }
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&pfd, 1, Int32(min(1000, max(1, left * 1000)))) <= 0 { continue }
            }
            let r = Glibc.recv(fd, p + off, n - off, 0)
            if r == 0 { throw Closed() }
            if r < 0 { if errno == EINTR { continue }; throw Closed() }
            off += r
        }
    }
}
