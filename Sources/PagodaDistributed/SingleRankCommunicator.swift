/// A group of one rank: every collective is the identity (copies where output differs from input).
public final class SingleRankCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var worldSize: Int { 1 }
    public func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {}
    public func allGather(_ input: UnsafePointer<Float>, count: Int, into output: UnsafeMutablePointer<Float>) throws {
        if UnsafePointer(output) != input { output.update(from: input, count: count) }
    }
    public func reduceScatterSum(_ input: UnsafePointer<Float>, count: Int, into output: UnsafeMutablePointer<Float>) throws {
        if UnsafePointer(output) != input { output.update(from: input, count: count) }
    }
    public func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws {
        guard root == 0 else { throw CommunicatorError.invalidArgument("broadcast root \(root) in a group of 1") }
    }
    public func send(_ buffer: UnsafePointer<Float>, count: Int, to peer: Int) throws {
        throw CommunicatorError.invalidArgument("send to rank \(peer) in a group of 1")
    }
    public func recv(_ buffer: UnsafeMutablePointer<Float>, count: Int, from peer: Int) throws {
        throw CommunicatorError.invalidArgument("recv from rank \(peer) in a group of 1")
    }
    public func barrier() throws {}
}
