import Foundation
import PagodaOpenAI

/// The API server's admission policy and its shutdown drain: how many generation requests it holds at once
/// (above `limit` a request gets 429 with `Retry-After`), and, once shutdown starts, the refusal of new ones
/// (503), the wait for those in flight, and the abort of what is left when the grace period ends.
public final class RequestAdmission: @unchecked Sendable {
    /// Where the server is in its life.
    public enum Phase: String, Sendable {
        case serving, draining, aborting
    }

    /// A held place; giving it back (or dropping it) frees the place once.
    public final class Ticket: @unchecked Sendable {
        private weak var owner: RequestAdmission?
        private let lock = NSLock()
        private var released = false

        fileprivate init(owner: RequestAdmission) { self.owner = owner }

        public func release() {
            lock.lock()
            let first = !released
            released = true
            lock.unlock()
            if first { owner?.give(back: self) }
        }

        deinit { release() }
    }

    /// Generation requests held at most; 0 for no limit.
    public let limit: Int
    /// Seconds a client is told to wait after a 429.
    public let retryAfterSeconds: Int

    private let lock = NSLock()
    private var phaseValue = Phase.serving
    private var held = 0
    private var running: [ObjectIdentifier: Task<Void, Never>] = [:]

    public init(limit: Int, retryAfterSeconds: Int = 1) {
        self.limit = limit; self.retryAfterSeconds = retryAfterSeconds
    }

    public var phase: Phase { lock.lock(); defer { lock.unlock() }; return phaseValue }
    /// Generation requests in flight (admitted and not yet answered to the end).
    public var inFlight: Int { lock.lock(); defer { lock.unlock() }; return held }

    /// A place for one generation request, or the error that refuses it: 503 once shutdown started, 429 at the limit.
    public func admit() throws -> Ticket {
        lock.lock()
        defer { lock.unlock() }
        guard phaseValue == .serving else {
            throw OpenAIError.serviceUnavailable("the server is shutting down and takes no new requests")
        }
        if limit > 0 && held >= limit {
            throw OpenAIError.tooManyRequests(
                "the server holds its limit of \(limit) requests in flight (--max-concurrent-requests); retry later",
                retryAfterSeconds: retryAfterSeconds)
        }
        held += 1
        return Ticket(owner: self)
    }

    fileprivate func give(back ticket: Ticket) {
        lock.lock()
        held -= 1
        lock.unlock()
    }

    /// Tracks a running request's work so that `abortAll` can stop it; returns false (and tracks nothing)
    /// when shutdown already aborts everything, in which case the caller must not start.
    func track(_ task: Task<Void, Never>, key: ObjectIdentifier) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard phaseValue != .aborting else { return false }
        running[key] = task
        return true
    }

    func untrack(_ key: ObjectIdentifier) {
        lock.lock()
        running[key] = nil
        lock.unlock()
    }

    /// True once the grace period ended: work cancelled now ends with `abortedByShutdown`.
    var aborting: Bool { phase == .aborting }

    /// The error a request cut off by shutdown ends with.
    static let abortedByShutdown = OpenAIError.serviceUnavailable("the server shut down before this request finished")

    /// Starts shutdown: new requests are refused from now on.
    public func startDraining() {
        lock.lock()
        if phaseValue == .serving { phaseValue = .draining }
        lock.unlock()
    }

    /// Waits until no request is in flight or `timeout` seconds passed; returns the number still in flight.
    public func waitForDrain(timeout: Double, poll: Double = 0.05) async -> Int {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let n = inFlight
            if n == 0 || Date() >= deadline { return n }
            try? await Task.sleep(nanoseconds: UInt64(poll * 1e9))
        }
    }

    /// Ends every request still running: each ends with `abortedByShutdown` and its engine requests are aborted.
    public func abortAll() {
        lock.lock()
        phaseValue = .aborting
        let tasks = Array(running.values)
        lock.unlock()
        for t in tasks { t.cancel() }
    }
}
