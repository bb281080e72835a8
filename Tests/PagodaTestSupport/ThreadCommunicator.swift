import Foundation
import PagodaDistributed

/// An in-process `Communicator` whose ranks are threads of one test: lets tests run a tensor- or
/// pipeline-parallel model split inside one process and compare it with the unsplit model.
///
/// Make one `ThreadCommunicatorGroup(worldSize:)`, hand `group.communicator(rank:)` to each thread.
/// Collectives publish buffer pointers, meet at a barrier, read each other's buffers, meet again.
public final class ThreadCommunicatorGroup: @unchecked Sendable {
    public let worldSize: Int
    let condition = NSCondition()
    var arrived = 0
    var generation = 0
    var published: [UnsafeRawPointer?]
    var mailboxes: [[Int: [[Float]]]]  // [to][from] -> queued messages

    public init(worldSize: Int) {
        self.worldSize = worldSize
        published = Array(repeating: nil, count: worldSize)
        mailboxes = Array(repeating: [:], count: worldSize)
    }

    public func communicator(rank: Int) -> ThreadCommunicator { ThreadCommunicator(group: self, rank: rank) }

    func barrier() {
        condition.lock()
        let gen = generation
        arrived += 1
        if arrived == worldSize {
            arrived = 0
            generation += 1
            condition.broadcast()
        } else {
            while generation == gen { condition.wait() }
        }
        condition.unlock()
    }
}

/// One rank's view of a `ThreadCommunicatorGroup`.
public final class ThreadCommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public var worldSize: Int { group.worldSize }
    let group: ThreadCommunicatorGroup

    init(group: ThreadCommunicatorGroup, rank: Int) {
        self.group = group
        self.rank = rank
    }

    private func publish(_ p: UnsafeRawPointer) {
        group.condition.lock()
        group.published[rank] = p
        group.condition.unlock()
        group.barrier()
    }

    private func peer<T>(_ r: Int, as: T.Type) -> UnsafePointer<T> {
        group.condition.lock()
        defer { group.condition.unlock() }
        return group.published[r]!.assumingMemoryBound(to: T.self)
    }

    public func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        publish(buffer)
        var sum = [Float](repeating: 0, count: count)
        for r in 0..<worldSize {  // rank order, so every rank gets bit-identical sums
            let p = peer(r, as: Float.self)
            for i in 0..<count { sum[i] += p[i] }
        }
        group.barrier()
        buffer.update(from: sum, count: count)
        group.barrier()
    }

    public func allGather(_ input: UnsafePointer<Float>, count: Int, into output: UnsafeMutablePointer<Float>) throws {
        publish(input)
        for r in 0..<worldSize { (output + r * count).update(from: peer(r, as: Float.self), count: count) }
        group.barrier()
    }

    public func reduceScatterSum(_ input: UnsafePointer<Float>, count: Int, into output: UnsafeMutablePointer<Float>) throws {
        publish(input)
        output.initialize(repeating: 0, count: count)
        for r in 0..<worldSize {
            let p = peer(r, as: Float.self) + rank * count
            for i in 0..<count { output[i] += p[i] }
        }
        group.barrier()
    }

    public func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws {
        publish(buffer)
        if rank != root { buffer.update(from: peer(root, as: Float.self), count: count) }
        group.barrier()
    }

    public func send(_ buffer: UnsafePointer<Float>, count: Int, to peer: Int) throws {
        let c = group.condition
        c.lock()
        group.mailboxes[peer][rank, default: []].append(Array(UnsafeBufferPointer(start: buffer, count: count)))
        c.broadcast()
        while !(group.mailboxes[peer][rank]?.isEmpty ?? true) { c.wait() }
        c.unlock()
    }

    public func recv(_ buffer: UnsafeMutablePointer<Float>, count: Int, from peer: Int) throws {
        let c = group.condition
        c.lock()
        while group.mailboxes[rank][peer]?.isEmpty ?? true { c.wait() }
        let message = group.mailboxes[rank][peer]!.removeFirst()
        c.broadcast()
        c.unlock()
        precondition(message.count == count, "recv of \(count) floats got a message of \(message.count)")
        buffer.update(from: message, count: count)
    }

    public func barrier() throws { group.barrier() }
}
