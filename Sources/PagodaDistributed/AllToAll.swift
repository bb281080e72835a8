/// Variable-size all-to-all over any `Communicator` (expert-parallel dispatch and combine).
///
/// Two phases, as DeepEP and vLLM's all2all managers do: every rank first learns how many rows each
/// peer will send it (`exchangeCounts`, one all-gather of the N×N count matrix), so each receive
/// buffer is sized exactly; then the rows move pairwise (`allToAllV`). The pairwise phase runs the
/// N−1 shifts of a ring (send to rank + s, receive from rank − s) and interleaves the two directions
/// in chunks of at most `allToAllChunkFloats` (a whole mailbox on shared memory, 32 KiB on TCP), so
/// two ranks sending each other megabytes never wait on each other's full mailbox or socket buffer.
/// Every wait is the communicator's own (timeouts, dead peers), so an all-to-all never waits forever.
extension Communicator {
    /// 32 KiB per send: fits a socket buffer; shared memory moves a whole mailbox at once.
    public var allToAllChunkFloats: Int { 8 * 1024 }

    /// Rank r passes `sendCounts[p]`: the rows it will send rank p (p < worldSize). Writes
    /// `recvCounts[p]`: the rows rank p will send here. Collective.
    public func exchangeCounts(_ sendCounts: UnsafePointer<Int>, into recvCounts: UnsafeMutablePointer<Int>) throws {
        let n = worldSize
        if n == 1 {
            recvCounts[0] = sendCounts[0]
            return
        }
        try withUnsafeTemporaryAllocation(of: Float.self, capacity: n + n * n) { tmp in
            let mine = tmp.baseAddress!, all = mine + n
            for p in 0..<n {
                guard sendCounts[p] >= 0, sendCounts[p] < 1 << 24 else {
                    throw CommunicatorError.invalidArgument("all-to-all count \(sendCounts[p]) for rank \(p) is out of range")
                }
                mine[p] = Float(sendCounts[p])
            }
            try allGather(mine, count: n, into: all)
            for p in 0..<n { recvCounts[p] = Int(all[p * n + rank]) }
        }
    }

    /// Moves rows of `rowSize` floats: `input` holds `sendCounts[0]` rows for rank 0, then `sendCounts[1]`
    /// rows for rank 1, ...; `output` receives `recvCounts[0]` rows from rank 0, then rank 1's, ... (the
    /// counts `exchangeCounts` returned). The rows a rank sends itself are copied. Collective.
    public func allToAllV(
        _ input: UnsafePointer<Float>, sendCounts: UnsafePointer<Int>, rowSize: Int,
        into output: UnsafeMutablePointer<Float>, recvCounts: UnsafePointer<Int>
    ) throws {
        let n = worldSize
        func offset(_ counts: UnsafePointer<Int>, _ p: Int) -> Int {
            var o = 0
            for q in 0..<p { o += counts[q] }
            return o * rowSize
        }
        let me = rank
        guard sendCounts[me] == recvCounts[me] else {
            throw CommunicatorError.invalidArgument("rank \(me) sends itself \(sendCounts[me]) rows but expects \(recvCounts[me])")
        }
        if sendCounts[me] > 0 {
            (output + offset(recvCounts, me)).update(from: input + offset(sendCounts, me), count: sendCounts[me] * rowSize)
        }
        let chunk = allToAllChunkFloats
        for s in 1..<max(n, 1) {
            let dst = (me + s) % n, src = (me - s + n) % n
            let sendBase = input + offset(sendCounts, dst), recvBase = output + offset(recvCounts, src)
            let sendTotal = sendCounts[dst] * rowSize, recvTotal = recvCounts[src] * rowSize
            var sent = 0, received = 0
            while sent < sendTotal || received < recvTotal {
                if sent < sendTotal {
                    let len = min(chunk, sendTotal - sent)
                    try send(sendBase + sent, count: len, to: dst)
                    sent += len
                }
                if received < recvTotal {
                    let len = min(chunk, recvTotal - received)
                    try recv(recvBase + received, count: len, from: src)
                    received += len
                }
            }
        }
    }
}
