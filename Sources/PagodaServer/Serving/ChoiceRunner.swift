import Foundation
import PagodaEngine
import PagodaOpenAI

/// Identifies one run in `RequestAdmission`'s registry while the run lives.
private final class RunToken: Sendable {}

/// One choice of one prompt, as an engine request with its output processor.
struct ChoiceJob {
    let index: Int
    let request: EngineRequest
    let processor: ChoiceOutputProcessor
}

/// Progress of the choices of one HTTP request, merged in arrival order.
enum ChoiceEvent {
    case delta(index: Int, ChoiceDelta)
    case failed(index: Int, Error)
}

/// The engine rejected a request (bad parameters it checks itself, prompt too long, ...), or, with
/// `engineFailed`, failed it (a step, a lost peer).
struct EngineRequestError: Error, CustomStringConvertible {
    let message: String
    var engineFailed = false
    var description: String { message }
}

/// The merged events of a running set of choices; `cancel()` aborts every choice still running.
struct ChoiceRun {
    let events: AsyncStream<ChoiceEvent>
    let producer: Task<Void, Never>
    func cancel() { producer.cancel() }
}

/// Runs the choices of one HTTP request concurrently against the engine and merges their deltas
/// into one stream. Dropping or cancelling the stream cancels every choice, which aborts the
/// engine requests still running (their KV blocks return to the pool).
final class ChoiceRunner: @unchecked Sendable {
    let engine: EngineClient
    let metrics: ServerMetrics
    let admission: RequestAdmission

    init(engine: EngineClient, metrics: ServerMetrics, admission: RequestAdmission) {
        self.engine = engine; self.metrics = metrics; self.admission = admission
    }

    func run(_ jobs: [ChoiceJob], streaming: Bool) -> ChoiceRun {
        let engine = self.engine, metrics = self.metrics, admission = self.admission
        let (events, continuation) = AsyncStream<ChoiceEvent>.makeStream()
        // Shutdown's abort cancels the producer: each choice then ends with `abortedByShutdown`.
        let token = RunToken()
        let key = ObjectIdentifier(token)
        let gate = AsyncStream<Void>.makeStream()
        let producer = Task {
            for await _ in gate.stream {}  // starts once it is tracked (or refused)
            defer { admission.untrack(ObjectIdentifier(token)) }
            await withTaskGroup(of: Void.self) { group in
                for job in jobs {
                    group.addTask {
                        await Self.runOne(job, streaming: streaming, engine: engine, metrics: metrics, continuation: continuation)
                        if Task.isCancelled && admission.aborting {
                            continuation.yield(.failed(index: job.index, RequestAdmission.abortedByShutdown))
                        }
                    }
                }
            }
            continuation.finish()
        }
        if !admission.track(producer, key: key) { producer.cancel() }
        gate.continuation.finish()
        continuation.onTermination = { termination in
            if case .cancelled = termination { producer.cancel() }
        }
        return ChoiceRun(events: events, producer: producer)
    }

    private static func runOne(
        _ job: ChoiceJob, streaming: Bool, engine: EngineClient, metrics: ServerMetrics,
        continuation: AsyncStream<ChoiceEvent>.Continuation
    ) async {
        var timing = RequestTiming(
            arrivalTime: job.request.arrivalTime, firstTokenTime: nil, lastTokenTime: nil, finishTime: 0,
            promptTokens: job.request.promptTokenIds.count, generationTokens: 0, finishReason: "abort")
        defer {
            timing.finishTime = Date().timeIntervalSince1970
            timing.generationTokens = job.processor.tokenIds.count
            timing.finishReason = job.processor.finishReason ?? timing.finishReason
            metrics.record(request: timing)
        }
        do {
            for try await output in engine.generate(job.request) {
                if output.finishReason == .error {
                    timing.finishReason = "error"
                    throw EngineRequestError(
                        message: output.error ?? "the engine failed this request", engineFailed: output.engineFailed == true)
                }
                let now = Date().timeIntervalSince1970
                if !output.newTokenIds.isEmpty {
                    if timing.firstTokenTime == nil {
                        timing.firstTokenTime = now
                        timing.rank = output.dataParallelRank  // nil: the server's one engine
                    }
                    timing.lastTokenTime = now
                }
                let delta = job.processor.process(output, streaming: streaming)
                continuation.yield(.delta(index: job.index, delta))
                if delta.stoppedByString {
                    engine.abort([job.request.requestId])
                    break
                }
            }
            if Task.isCancelled { timing.finishReason = "abort" }
        } catch {
            if !(error is EngineRequestError) { timing.finishReason = "error" }
            continuation.yield(.failed(index: job.index, error))
        }
    }
}
