/// Why a collective failed. Every case names the rank it concerns, so an engine can report
/// "worker rank 3 died" instead of hanging.
public enum CommunicatorError: Error, CustomStringConvertible, Equatable {
    /// The peer process exited (its socket closed, or its pid is gone) while this rank waited on it.
    case peerDied(rank: Int, detail: String)
    /// No progress from `rank` within the communicator's timeout.
    case timeout(rank: Int, seconds: Double, operation: String)
    /// Setting up the group failed (shm_open, bind, connect, handshake).
    case setupFailed(rank: Int, detail: String)
    /// A call broke the collective contract (bad peer, bad count, mismatched sizes).
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .peerDied(let rank, let detail): return "rank \(rank) died: \(detail)"
        case .timeout(let rank, let seconds, let op):
            return "timed out after \(seconds) s waiting for rank \(rank) in \(op)"
        case .setupFailed(let rank, let detail): return "communicator setup failed (rank \(rank)): \(detail)"
        case .invalidArgument(let s): return "invalid collective call: \(s)"
        }
    }
}
