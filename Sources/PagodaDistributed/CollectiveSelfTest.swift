import Foundation

/// A check that every collective of a `Communicator` equals the single-process computation, run by every
/// rank of a group at once (threads in one process, or separate processes: the unit tests and
/// `pagoda worker --collective-selftest`). Each rank can compute every other rank's input, since inputs
/// are a fixed function of (rank, index, size, operation), so each rank verifies its own result locally.
public enum CollectiveSelfTest {
    /// Element counts exercised by default: one element up to 16 MiB of floats (4 Mi elements).
    public static let defaultCounts = [1, 3, 17, 1000, 4097, 65_541, 1 << 22]

    /// The input rank `rank` contributes for element `i` of a collective tagged `salt`. Fractional values,
    /// so a different summation order would show as a mismatch.
    @inline(__always)
    public static func value(rank: Int, index i: Int, salt: Int) -> Float {
        Float((rank &* 7919 &+ i &* 31 &+ salt &* 101) % 2003) * 0.0173 - 17.3
    }

    /// Runs all collectives for each count; returns a description of every mismatch (empty: all equal).
    public static func run(_ comm: Communicator, counts: [Int] = defaultCounts) throws -> [String] {
        let n = comm.worldSize, me = comm.rank
        var failures: [String] = []
        func check(_ what: String, _ got: UnsafePointer<Float>, _ expected: (Int) -> Float, _ count: Int) {
            for i in 0..<count where got[i] != expected(i) {
                failures.append("rank \(me) \(what) count \(count): element \(i) is \(got[i]), expected \(expected(i))")
                return
            }
        }
        for (k, count) in counts.enumerated() {
            let buf = UnsafeMutablePointer<Float>.allocate(capacity: count * max(n, 1))
            let out = UnsafeMutablePointer<Float>.allocate(capacity: count * max(n, 1))
            defer { buf.deallocate(); out.deallocate() }
            // All-reduce: sum in rank order.
            var salt = k * 10 + 1
            for i in 0..<count { buf[i] = value(rank: me, index: i, salt: salt) }
            try comm.allReduceSum(buf, count: count)
            check("allReduceSum", buf, { i in
                var acc = value(rank: 0, index: i, salt: salt)
                for r in 1..<max(n, 1) { acc += value(rank: r, index: i, salt: salt) }
                return acc
            }, count)
            // All-gather.
            salt = k * 10 + 2
            for i in 0..<count { buf[i] = value(rank: me, index: i, salt: salt) }
            try comm.allGather(buf, count: count, into: out)
            check("allGather", out, { j in value(rank: j / count, index: j % count, salt: salt) }, count * n)
            // Reduce-scatter: input holds n chunks of count; chunk r of rank q is value(q, r*count + i).
            salt = k * 10 + 3
            for j in 0..<(count * n) { buf[j] = value(rank: me, index: j, salt: salt) }
            try comm.reduceScatterSum(buf, count: count, into: out)
            check("reduceScatterSum", out, { i in
                var acc = value(rank: 0, index: me * count + i, salt: salt)
                for r in 1..<max(n, 1) { acc += value(rank: r, index: me * count + i, salt: salt) }
                return acc
            }, count)
            // Broadcast from the last rank.
            salt = k * 10 + 4
            let root = n - 1
            for i in 0..<count { buf[i] = value(rank: me, index: i, salt: salt) }
            try comm.broadcast(buf, count: count, root: root)
            check("broadcast", buf, { i in value(rank: root, index: i, salt: salt) }, count)
            // Send/recv around a ring: rank r sends to r+1 and receives from r-1 (even ranks send first).
            if n > 1 {
                salt = k * 10 + 5
                let next = (me + 1) % n, prev = (me + n - 1) % n
                for i in 0..<count { buf[i] = value(rank: me, index: i, salt: salt) }
                if me % 2 == 0 {
                    try comm.send(buf, count: count, to: next)
                    try comm.recv(out, count: count, from: prev)
                } else {
                    try comm.recv(out, count: count, from: prev)
                    try comm.send(buf, count: count, to: next)
                }
                check("send/recv", out, { i in value(rank: prev, index: i, salt: salt) }, count)
            }
            try comm.barrier()
        }
        return failures
    }

    /// Median and p99 latency in microseconds of `allReduceSum` of `count` floats over `iterations` calls.
    public static func benchmarkAllReduce(_ comm: Communicator, count: Int, iterations: Int, warmup: Int = 20) throws -> (median: Double, p99: Double) {
        let buf = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { buf.deallocate() }
        for i in 0..<count { buf[i] = Float(i % 7) }
        for _ in 0..<warmup { try comm.allReduceSum(buf, count: count) }
        var times = [Double]()
        times.reserveCapacity(iterations)
        for _ in 0..<iterations {
            try comm.barrier()
            let t0 = DispatchTime.now().uptimeNanoseconds
            try comm.allReduceSum(buf, count: count)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1000)
        }
        times.sort()
        return (times[times.count / 2], times[min(times.count - 1, times.count * 99 / 100)])
    }
}
