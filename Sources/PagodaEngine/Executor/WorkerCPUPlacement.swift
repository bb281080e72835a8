import Foundation

/// The CPUs one worker process's threads run on when the engine's workers share a host: worker of
/// local rank r with t threads takes the t CPUs starting at r × t in this process's allowed set
/// (`sched_getaffinity`, read from /proc/self/status), wrapping around the set. Threads are pinned only
/// when the workers fit (ranks × threads ≤ allowed CPUs); when they oversubscribe, pinned spinning
/// threads of two processes would share a CPU and wait on each other (CPU-FACTS), so nothing is pinned.
public struct WorkerCPUPlacement: Equatable, Sendable {
    /// One CPU per thread; the calling thread (the worker's main thread) is on `cpus[0]`, pool
    /// worker w on `cpus[w]`.
    public let cpus: [Int]
    public let pinned: Bool

    public init(cpus: [Int], pinned: Bool) { self.cpus = cpus; self.pinned = pinned }

    /// The CPUs of data-parallel engine `index` of `count` on this host: an even, contiguous share of
    /// `allowed` (the first `allowed.count % count` engines get one more); every engine gets at least one
    /// CPU (they share when there are more engines than CPUs).
    public static func engineShare(index: Int, count: Int, allowed: [Int] = allowedCPUs()) -> [Int] {
        let set = allowed.isEmpty ? [0] : allowed
        let n = max(1, count)
        guard set.count >= n else { return [set[index % set.count]] }
        let base = set.count / n, extra = set.count % n
        let start = index * base + min(index, extra)
        return Array(set[start..<(start + base + (index < extra ? 1 : 0))])
    }

    /// The placement of `localRank` of `localWorldSize` workers with `threads` threads each.
    public static func make(localRank: Int, localWorldSize: Int, threads: Int, allowed: [Int]) -> WorkerCPUPlacement {
        let set = allowed.isEmpty ? [0] : allowed
        let t = max(1, threads)
        let start = (localRank * t) % set.count
        let cpus = (0..<t).map { set[(start + $0) % set.count] }
        return WorkerCPUPlacement(cpus: cpus, pinned: localWorldSize * t <= set.count)
    }

    /// The CPU ids this process may run on (`Cpus_allowed_list`, e.g. "0-3,8"); 0..<n when unreadable.
    public static func allowedCPUs() -> [Int] {
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") }),
           let list = parseCPUList(String(line.dropFirst("Cpus_allowed_list:".count))), !list.isEmpty {
            return list
        }
        return Array(0..<max(1, ProcessInfo.processInfo.activeProcessorCount))
    }

    /// Parses the kernel's CPU list format ("0-3,8,10-11"); nil if malformed.
    public static func parseCPUList(_ text: String) -> [Int]? {
        var cpus: [Int] = []
        for part in text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",") {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            if bounds.count == 1, let c = Int(bounds[0]) {
                cpus.append(c)
            } else if bounds.count == 2, let a = Int(bounds[0]), let b = Int(bounds[1]), a <= b {
                cpus.append(contentsOf: a...b)
            } else {
                return nil
            }
        }
        return cpus
    }
}
