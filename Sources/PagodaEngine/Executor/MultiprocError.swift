/// Why the multiprocess executor stopped; always names the worker rank (rank = ppRank × TP + tpRank).
public enum MultiprocExecutorError: Error, CustomStringConvertible, Equatable {
    /// The worker process exited or was killed (`detail`: its exit status), or closed its socket.
    case workerDied(rank: Int, detail: String)
    /// The worker reported an error and exited.
    case workerFailed(rank: Int, message: String)
    /// Starting the workers failed (executable not found, socket, handshake).
    case startFailed(String)

    public var description: String {
        switch self {
        case .workerDied(let rank, let detail): return "worker rank \(rank) died: \(detail)"
        case .workerFailed(let rank, let message): return "worker rank \(rank) failed: \(message)"
        case .startFailed(let s): return "could not start the worker processes: \(s)"
        }
    }
}
