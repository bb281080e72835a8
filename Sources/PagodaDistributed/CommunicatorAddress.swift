/// Where a process group meets, as passed on a worker's command line:
/// `shm:/pagoda-<id>-tp0` (one host) or `tcp:<host>:<port>` (rank 0 listens there), or `single`.
public enum CommunicatorAddress: Equatable, CustomStringConvertible, Sendable {
    case single
    case sharedMemory(name: String)
    case tcp(host: String, port: Int)

    public init(parsing s: String) throws {
        if s == "single" { self = .single; return }
        if s.hasPrefix("shm:") {
            let name = String(s.dropFirst(4))
            guard name.hasPrefix("/"), name.count > 1, !name.dropFirst().contains("/") else {
                throw CommunicatorError.invalidArgument("shared-memory name must look like /name: \(s)")
            }
            self = .sharedMemory(name: name)
            return
        }
        if s.hasPrefix("tcp:") {
            let rest = s.dropFirst(4)
            guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), port > 0, port < 65536 else {
                throw CommunicatorError.invalidArgument("TCP address must look like tcp:host:port: \(s)")
            }
            self = .tcp(host: String(rest[..<colon]), port: port)
            return
        }
        throw CommunicatorError.invalidArgument("unknown communicator address \(s) (expected shm:/name, tcp:host:port or single)")
    }

    public var description: String {
        switch self {
        case .single: return "single"
        case .sharedMemory(let name): return "shm:\(name)"
        case .tcp(let host, let port): return "tcp:\(host):\(port)"
        }
    }

    /// Joins the group as `rank` of `worldSize`; blocks until every rank has joined (or `timeout`). A TCP group's
    /// connections prove `secret` (shared memory is reachable only by processes of this host and user).
    public func connect(rank: Int, worldSize: Int, secret: PeerSecret, timeout: Double = 300) throws -> Communicator {
        if worldSize == 1 { return SingleRankCommunicator() }
        switch self {
        case .single:
            throw CommunicatorError.invalidArgument("address 'single' for a group of \(worldSize)")
        case .sharedMemory(let name):
            return try SharedMemoryCommunicator(name: name, rank: rank, worldSize: worldSize, timeout: timeout)
        case .tcp(let host, let port):
            return try TCPCommunicator(host: host, port: port, rank: rank, worldSize: worldSize, secret: secret, timeout: timeout)
        }
    }
}
