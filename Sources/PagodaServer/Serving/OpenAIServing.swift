import Foundation
import Logging
import PagodaEngine
import PagodaOpenAI

/// The OpenAI request path shared by the endpoints (vLLM's `OpenAIServing`): model-name checks,
/// prompt tokenization and length checks, fan-out of choices to the engine, error mapping.
/// Completions and chat each parse their body and tokenize their prompts
/// (`OpenAIServing+Completions.swift`, `+Chat.swift`), then share `prepare` → `serve` with their
/// own `ChoiceRenderer` (`ServingRequest.swift`).
public final class OpenAIServing: @unchecked Sendable {
    public let config: ServerConfig
    public let tokenizer: ServingTokenizer
    public let engine: EngineClient
    public let metrics: ServerMetrics
    /// The in-flight limit and the shutdown drain.
    public let admission: RequestAdmission
    let runner: ChoiceRunner
    let logger: Logger

    public init(config: ServerConfig, tokenizer: ServingTokenizer, engine: EngineClient, metrics: ServerMetrics, logger: Logger) {
        self.config = config; self.tokenizer = tokenizer; self.engine = engine; self.metrics = metrics; self.logger = logger
        self.admission = RequestAdmission(limit: config.maxConcurrentRequests)
        self.runner = ChoiceRunner(engine: engine, metrics: metrics, admission: admission)
        engine.onStats { [metrics] rank, s in metrics.record(stats: s, rank: rank) }
    }

    public var maxModelLen: Int { engine.handshake.maxModelLen }

    /// A 404 unless `name` is nil or one of the served names (vLLM's `_check_model`).
    func checkModel(_ name: String?) throws {
        guard let name, !config.servedModelNames.contains(name) else { return }
        throw OpenAIError.notFound("The model `\(name)` does not exist.", param: "model")
    }

    /// A 503 while the engines are still loading (routes that need their figures, such as the max model length).
    func checkEngineStarted() throws {
        if let reason = engine.starting { throw OpenAIError.serviceUnavailable(reason) }
    }

    func checkEngineAlive() throws {
        if let reason = engine.dead { throw OpenAIError.serviceUnavailable("engine core is not running: \(reason)") }
    }

    static func newRequestId(_ prefix: String) -> String {
        prefix + "-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
    }

    static func now() -> Int { Int(Date().timeIntervalSince1970) }

    /// Token ids given directly must be in the vocabulary.
    func checkTokenIds(_ ids: [Int], param: String) throws {
        let v = tokenizer.vocabSize
        if let bad = ids.first(where: { $0 < 0 || $0 >= v }) {
            throw OpenAIError.badRequest("token id \(bad) is out of vocabulary (0..<\(v))", param: param)
        }
    }

    func engineRequest(
        id: String, promptTokenIds: [Int], sampling: SamplingParams, arrival: Double,
        dataParallelRank: Int? = nil, kvTransferParams: KVTransferParams? = nil
    ) -> EngineRequest {
        EngineRequest(
            requestId: id, promptTokenIds: promptTokenIds, sampling: sampling,
            eosTokenIds: engine.handshake.eosTokenIds, arrivalTime: arrival, dataParallelRank: dataParallelRank,
            kvTransferParams: kvTransferParams)
    }

    /// The OpenAI error for a failure on the request path.
    func openAIError(_ error: Error) -> OpenAIError {
        switch error {
        case let e as OpenAIError: return e
        case let e as EngineRequestError: return e.engineFailed ? .internalError(e.message) : .badRequest(e.message)
        case let e as EngineDeadError: return .internalError(e.description)
        case DataParallelError.rankDown(let s): return .serviceUnavailable(s)
        case let e as DataParallelError: return .badRequest(e.description, param: "data_parallel_rank")
        default: return .internalError("\(error)")
        }
    }

    func logRequest(_ id: String, promptTokens: Int, sampling: SamplingParams, n: Int) {
        guard !config.disableLogRequests else { return }
        logger.info(
            "Received request \(id): prompt tokens \(promptTokens), n \(n), max_tokens \(sampling.maxTokens), temperature \(sampling.temperature), seed \(sampling.seed.map(String.init) ?? "none")"
        )
    }

    /// Streams SSE frames through `write`; a failed write (client gone) or a cancelled task
    /// cancels every choice, which aborts their engine requests.
    func stream(
        _ run: ChoiceRun, write: ([UInt8]) async throws -> Void,
        frames: @escaping (ChoiceEvent) throws -> [[UInt8]], closing: @escaping () throws -> [[UInt8]]
    ) async {
        await withTaskCancellationHandler {
            do {
                for await event in run.events {
                    if case .failed(_, let error) = event {
                        run.cancel()
                        try await write(ServerSentEvents.frame(json: openAIError(error).body))
                        try await write(ServerSentEvents.done)
                        return
                    }
                    for f in try frames(event) { try await write(f) }
                }
                if Task.isCancelled { return }
                for f in try closing() { try await write(f) }
                try await write(ServerSentEvents.done)
            } catch {
                // The client went away (or encoding failed): stop generating for it.
                run.cancel()
            }
        } onCancel: {
            run.cancel()
        }
    }

    /// Waits for every choice to finish (non-streaming); the first failure cancels the rest and is thrown.
    func collect(_ run: ChoiceRun) async throws {
        try await withTaskCancellationHandler {
            for await event in run.events {
                if case .failed(_, let error) = event {
                    run.cancel()
                    throw openAIError(error)
                }
            }
            if Task.isCancelled { throw CancellationError() }
        } onCancel: {
            run.cancel()
        }
    }
}
