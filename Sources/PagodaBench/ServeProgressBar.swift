import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A tqdm-style progress line on stderr (`42%|████▎     | 42/100 [00:03<00:04, 12.51it/s]`), drawn only when
/// stdout is a terminal and `--disable-tqdm` is off, redrawn at most ten times a second.
public final class ServeProgressBar: @unchecked Sendable {
    private let total: Int
    private let lock = NSLock()
    private var done = 0
    private var lastDraw = 0.0
    private let start = benchNow()
    private let enabled: Bool

    public init(total: Int, enabled: Bool) {
        self.total = total
        self.enabled = enabled && isatty(STDOUT_FILENO) != 0
        if self.enabled { draw(force: true) }
    }

    public func update(_ n: Int = 1) {
        guard enabled else { return }
        lock.lock()
        done += n
        lock.unlock()
        draw(force: false)
    }

    public func close() {
        guard enabled else { return }
        draw(force: true)
        FileHandle.standardError.write(Data("\n".utf8))
    }

    private func draw(force: Bool) {
        lock.lock()
        defer { lock.unlock() }
        let now = benchNow()
        if !force && now - lastDraw < 0.1 && done < total { return }
        lastDraw = now
        let elapsed = now - start
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let width = 10
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "█", count: filled) + String(repeating: " ", count: width - filled)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let remaining = rate > 0 ? Double(total - done) / rate : 0
        let percent = String(format: "%3d", Int(fraction * 100))
        let speed = rate > 0 ? String(format: "%.2fit/s", rate) : "?it/s"
        let line = "\r\(percent)%|\(bar)| \(done)/\(total) [\(Self.clock(elapsed))<\(Self.clock(remaining)), \(speed)]"
        FileHandle.standardError.write(Data(line.utf8))
    }

    private static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600
            ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%02d:%02d", s / 60, s % 60)
    }
}
