#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging

/// A start-up failure of `pagoda serve`, printed as one line ("Error: ...") before a non-zero exit.
public struct ServeStartupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}

/// Finds the model folder to serve: the given path, or the small model committed in the
/// repository (`models/tiny-qwen3`, looked up from the working directory and from the binary).
public enum ServedModelFolder {
    public static let defaultModel = "models/tiny-qwen3"

    public static func resolve(_ given: String?) throws -> String {
        let fm = FileManager.default
        var candidates: [String] = []
        if let given {
            candidates = [given]
        } else {
            candidates.append(defaultModel)
            // .build/<config>/pagoda -> repository root
            let exe = URL(fileURLWithPath: PagodaExecutable.path)
            var dir = exe.deletingLastPathComponent()
            for _ in 0..<4 {
                candidates.append(dir.appendingPathComponent(defaultModel).path)
                dir = dir.deletingLastPathComponent()
            }
        }
        for c in candidates {
            var isDir: ObjCBool = false
            // A GGUF file carries config, tokenizer and weights.
            if c.hasSuffix(".gguf"), fm.fileExists(atPath: c, isDirectory: &isDir), !isDir.boolValue {
                return URL(fileURLWithPath: c).standardizedFileURL.path
            }
            if fm.fileExists(atPath: c, isDirectory: &isDir), isDir.boolValue {
                let holdsGGUF = ((try? fm.contentsOfDirectory(atPath: c)) ?? []).contains { $0.hasSuffix(".gguf") }
                guard holdsGGUF || fm.fileExists(atPath: c + "/config.json") else {
                    throw ServeStartupError("model folder '\(c)' has no config.json")
                }
                return URL(fileURLWithPath: c).standardizedFileURL.path
            }
        }
        if let given { throw ServeStartupError("model '\(given)' not found (expected a folder with config.json, *.safetensors and tokenizer.json, or a .gguf file)") }
        throw ServeStartupError("no MODEL given and the default model '\(defaultModel)' was not found; pass a model folder")
    }
}

/// The running `pagoda` binary (to start `pagoda engine-core` from it).
public enum PagodaExecutable {
    public static var path: String {
        if let p = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return p }
        return Bundle.main.executablePath ?? CommandLine.arguments[0]
    }
}

/// Fails fast (before loading a model) when host:port cannot be bound.
public enum ListenPortCheck {
    public static func ensureFree(host: String, port: Int) throws {
        guard port != 0 else { return }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        let h = host == "localhost" ? "127.0.0.1" : host
        guard inet_pton(AF_INET, h, &addr.sin_addr) == 1 else { return }  // a name or IPv6: let the server report it
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if rc != 0 {
            throw ServeStartupError("cannot listen on \(host):\(port): \(String(cString: strerror(errno)))")
        }
    }
}

/// A one-line spinner with elapsed time on stderr while something slow runs — only when stderr is
/// a terminal (logs and pipes get no control characters).
public final class TerminalProgress: @unchecked Sendable {
    private let message: String
    private let lock = NSLock()
    private var running = false
    private let enabled = isatty(2) != 0

    public init(message: String) { self.message = message }

    public func start() {
        guard enabled else {
            FileHandle.standardError.write(Data("\(message) ...\n".utf8))
            return
        }
        lock.lock(); running = true; lock.unlock()
        let start = Date()
        let thread = Thread { [self] in
            let frames = ["|", "/", "-", "\\"]
            var k = 0
            while true {
                lock.lock(); let go = running; lock.unlock()
                guard go else { return }
                let line = "\r\(frames[k % 4]) \(message) ... \(String(format: "%.1f", Date().timeIntervalSince(start))) s\u{1B}[K"
                FileHandle.standardError.write(Data(line.utf8))
                k += 1
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
        thread.start()
    }

    public func stop() {
        guard enabled else { return }
        lock.lock(); running = false; lock.unlock()
        Thread.sleep(forTimeInterval: 0.12)
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}

/// Set once the server is shutting down on purpose (so the engine core's exit is not a crash).
public final class ServerShutdownFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    public init() {}
    public var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    public func set() { lock.lock(); value = true; lock.unlock() }
}

/// Logging for `serve` and `engine-core`: swift-log to stderr, with the data-parallel rank in
/// every line when there is more than one rank.
public enum ServeLogging {
    public static func bootstrap(dataParallel: (rank: Int, size: Int)?, process: String = "serve") {
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = .info
            if let dp = dataParallel { h.metadata["dp_rank"] = "\(dp.rank)/\(dp.size)" }
            return h
        }
    }
}
