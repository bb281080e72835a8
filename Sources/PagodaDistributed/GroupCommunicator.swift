/// A communicator of one process group whose errors name global worker ranks instead of group ranks
/// (a TP group's rank 1 in stage 1 is worker rank T + 1), so an engine can report the right process.
public final class GroupCommunicator: Communicator {
    public let inner: Communicator
    public let group: ProcessGroup

    public init(_ inner: Communicator, group: ProcessGroup) {
        self.inner = inner
        self.group = group
    }

    public var rank: Int { inner.rank }
    public var worldSize: Int { inner.worldSize }
    public var allToAllChunkFloats: Int { inner.allToAllChunkFloats }

    private func global(_ r: Int) -> Int { r >= 0 && r < group.ranks.count ? group.ranks[r] : r }

    @inline(__always)
    private func mapped<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as CommunicatorError {
            switch e {
            case .peerDied(let r, let d): throw CommunicatorError.peerDied(rank: global(r), detail: d)
            case .timeout(let r, let s, let op):
                throw CommunicatorError.timeout(rank: global(r), seconds: s, operation: "\(group.name) \(op)")
            case .setupFailed(let r, let d): throw CommunicatorError.setupFailed(rank: global(r), detail: d)
            case .invalidArgument: throw e
            }
        }
    }

    public func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        try mapped { try inner.allReduceSum(buffer, count: count) }
    }
    public func allGather(_ input: UnsafePointer<Float>, count: Int, into output: UnsafeMutablePointer<Float>) throws {
        try mapped { try inner.allGather(input, count: count, into: output) }
    }
    public func reduceScatterSum(_ input: UnsafePointer<Float>, count: Int, into output: UnsafeMutablePointer<Float>) throws {
        try mapped { try inner.reduceScatterSum(input, count: count, into: output) }
    }
    public func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws {
        try mapped { try inner.broadcast(buffer, count: count, root: root) }
    }
    public func send(_ buffer: UnsafePointer<Float>, count: Int, to peer: Int) throws {
        try mapped { try inner.send(buffer, count: count, to: peer) }
    }
    public func recv(_ buffer: UnsafeMutablePointer<Float>, count: Int, from peer: Int) throws {
        try mapped { try inner.recv(buffer, count: count, from: peer) }
    }
    public func barrier() throws { try mapped { try inner.barrier() } }

    /// Joins `group` at `address` as global worker `rank`; errors name global ranks.
    public static func connect(
        _ address: CommunicatorAddress, group: ProcessGroup, rank: Int, secret: PeerSecret, timeout: Double
    ) throws -> GroupCommunicator {
        guard let g = group.groupRank(of: rank) else {
            throw CommunicatorError.invalidArgument("worker \(rank) is not in group \(group.name) \(group.ranks)")
        }
        let c = GroupCommunicator(SingleRankCommunicator(), group: group)
        let inner = try c.mapped { try address.connect(rank: g, worldSize: group.size, secret: secret, timeout: timeout) }
        return GroupCommunicator(inner, group: group)
    }
}
