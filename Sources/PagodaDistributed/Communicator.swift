/// The collective operations that tensor- and pipeline-parallel ranks use to exchange tensors.
///
/// One `Communicator` is one process group (a TP group, a PP group, ...) seen from one rank.
/// Implementations: single-rank (no-op), shared memory (ranks on one host), TCP (ranks on other hosts).
/// All buffers are contiguous `Float` arrays; every rank of the group calls the same collective with
/// the same `count` in the same order (MPI semantics).
public protocol Communicator: AnyObject {
    /// This process's rank inside the group, `0..<worldSize`.
    var rank: Int { get }
    /// Number of ranks in the group.
    var worldSize: Int { get }

    /// In place: every rank ends with the element-wise sum over all ranks.
    func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws
    /// `output` (count × worldSize) receives every rank's `input` (count), ordered by rank.
    func allGather(_ input: UnsafePointer<Float>, count: Int, into output: UnsafeMutablePointer<Float>) throws
    /// `input` holds worldSize chunks of `count`; rank r receives the sum over ranks of chunk r.
    func reduceScatterSum(_ input: UnsafePointer<Float>, count: Int, into output: UnsafeMutablePointer<Float>) throws
    /// In place: every rank ends with `root`'s buffer.
    func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws
    /// Point to point (pipeline stages): blocks until the peer has taken the data.
    func send(_ buffer: UnsafePointer<Float>, count: Int, to peer: Int) throws
    func recv(_ buffer: UnsafeMutablePointer<Float>, count: Int, from peer: Int) throws
    /// Every rank waits until all ranks have arrived.
    func barrier() throws
    /// Floats `allToAllV` moves per send or receive call: what one eager send can hold without the receiver
    /// (a shared-memory mailbox, a socket buffer). Default: 8,192 (32 KiB).
    var allToAllChunkFloats: Int { get }
}
