import Foundation
import PagodaEngine
import PagodaOpenAI
import PagodaStructured

/// One generation request after the endpoint has parsed it: the prompts as token ids, the
/// validated sampling parameters with each prompt's `max_tokens`, and what the response needs
/// (id, creation time, model name, streaming options). Completions and chat both build one and
/// hand it to `OpenAIServing.serve`, which runs and renders it the same way for both.
struct ServingRequest {
    let requestId: String
    let created: Int
    let model: String
    /// Token ids of each prompt (chat: one). Choice `p * n + i` is choice i of prompt p.
    let prompts: [[Int]]
    let sampling: RequestSampling
    /// `max_tokens` of each prompt (filled from the context left when the request gave none).
    let maxTokens: [Int]
    let stream: Bool
    let includeUsage: Bool
    let continuousUsage: Bool
    /// The rank the client pinned (`data_parallel_rank`), checked against the engines behind this server.
    let dataParallelRank: Int?
    /// `kv_transfer_params` (prefill/decode disaggregation), for the engine's KV connector.
    var kvTransferParams: KVTransferParams? = nil

    var n: Int { sampling.n }
    var promptTokens: Int { prompts.reduce(0) { $0 + $1.count } }
}

/// How an endpoint turns the choices of a `ServingRequest` into its wire types: SSE chunks while
/// streaming, one JSON body otherwise. A renderer serves one request; streaming calls it from one
/// task at a time.
protocol ChoiceRenderer: AnyObject, Sendable {
    /// Frames sent before any token (chat: each choice's role); `usage` only with continuous usage.
    func openingFrames(usage: UsageInfo?) throws -> [[UInt8]]
    /// Frames for one delta of choice `index` (none when it carries nothing to show).
    func frames(index: Int, delta: ChoiceDelta, usage: UsageInfo?) throws -> [[UInt8]]
    /// The last chunk with the whole request's usage (`stream_options.include_usage`).
    func usageFrame(_ usage: UsageInfo) throws -> [UInt8]
    /// The whole response once every choice has finished, choices in index order.
    func response(_ choices: [ChoiceOutputProcessor], usage: UsageInfo) throws -> Data
}

extension OpenAIServing {
    /// Builds the `ServingRequest` shared by completions and chat: applies `truncate_prompt_tokens`,
    /// fits each prompt with its `max_tokens` into the context and validates the sampling
    /// parameters (one validator: `SamplingParams.validate`).
    func prepare(_ fields: some SamplingFields, prompts: [[Int]], idPrefix: String, defaultMaxTokens: Int?, rankHeader: String? = nil,
                 logprobs: Int?, logprobsParam: String = "logprobs", structuredOutputs: StructuredOutputSpec? = nil) throws -> ServingRequest {
        if fields.streamOptions != nil && !(fields.stream ?? false) {
            throw OpenAIError.badRequest("stream_options can only be set when stream is true", param: "stream_options")
        }
        // The model's vocabulary (vLLM checks logit_bias against it), the bound the engine checks too.
        var sampling = try RequestSampling.from(fields, logprobs: logprobs, logprobsParam: logprobsParam,
                                                vocabSize: engine.handshake.vocabSize, maxLogprobs: engine.handshake.maxLogprobs ?? SamplingParams.maxLogprobs)
        sampling.params.structuredOutputs = structuredOutputs
        let prompts = try prompts.map { try truncate($0, to: fields.truncatePromptTokens) }
        // Each prompt must fit with its own max_tokens; the shared parameters carry the largest.
        var maxTokens: [Int] = []
        for ids in prompts {
            var s = sampling
            try s.fit(promptLength: ids.count, maxModelLen: maxModelLen, defaultMaxTokens: defaultMaxTokens)
            maxTokens.append(s.params.maxTokens)
        }
        sampling.params.maxTokens = maxTokens.max() ?? sampling.params.maxTokens
        return ServingRequest(
            requestId: fields.requestId.map { "\(idPrefix)-\($0)" } ?? Self.newRequestId(idPrefix), created: Self.now(),
            model: fields.model ?? config.primaryModelName, prompts: prompts, sampling: sampling, maxTokens: maxTokens,
            stream: fields.stream ?? false, includeUsage: fields.streamOptions?.includeUsage ?? false,
            continuousUsage: fields.streamOptions?.continuousUsageStats ?? false,
            dataParallelRank: try checkDataParallelRank(fields.dataParallelRank ?? parseRankHeader(rankHeader)))
    }

    /// vLLM's `X-data-parallel-rank` header; the body's `data_parallel_rank` wins when both are given.
    func parseRankHeader(_ text: String?) throws -> Int? {
        guard let text else { return nil }
        guard let r = Int(text.trimmingCharacters(in: .whitespaces)) else {
            throw OpenAIError.badRequest("X-data-parallel-rank must be an integer, got '\(text)'", param: "X-data-parallel-rank")
        }
        return r
    }

    /// A pinned rank must be one of the engines behind this server (with one engine: its own rank).
    func checkDataParallelRank(_ rank: Int?) throws -> Int? {
        guard let rank else { return nil }
        let ranks = engine.engines.map(\.rank)
        guard ranks.contains(rank) else {
            throw OpenAIError.badRequest(
                "data_parallel_rank \(rank) is not served here (ranks \(ranks.map(String.init).joined(separator: ", ")))",
                param: "data_parallel_rank")
        }
        return rank
    }

    /// vLLM's `truncate_prompt_tokens`: keep the last k tokens (-1: the last max_model_len).
    func truncate(_ ids: [Int], to k: Int?) throws -> [Int] {
        guard let k else { return ids }
        let keep = k == -1 ? maxModelLen : k
        guard keep >= 1 else {
            throw OpenAIError.badRequest("truncate_prompt_tokens must be -1 or at least 1, got \(k)", param: "truncate_prompt_tokens")
        }
        guard keep <= maxModelLen else {
            throw OpenAIError.badRequest("truncate_prompt_tokens (\(k)) is greater than max_model_len (\(maxModelLen))",
                                         param: "truncate_prompt_tokens")
        }
        return ids.count > keep ? Array(ids.suffix(keep)) : ids
    }

    /// Runs a prepared request and renders it: the choices go to the engine through `ChoiceRunner`
    /// and come back as SSE chunks or one JSON body. A client that goes away (a failed write, a
    /// cancelled task) aborts every choice still running.
    func serve(_ request: ServingRequest, renderer: some ChoiceRenderer) async throws -> ServingResponse {
        let arrival = Date().timeIntervalSince1970
        let n = request.n
        var jobs: [ChoiceJob] = []
        for (p, ids) in request.prompts.enumerated() {
            for i in 0..<n {
                let index = p * n + i
                var params = request.sampling.params(forChoice: i)
                params.maxTokens = request.maxTokens[p]
                jobs.append(ChoiceJob(
                    index: index,
                    request: engineRequest(id: "\(request.requestId)-\(index)", promptTokenIds: ids, sampling: params, arrival: arrival,
                                           dataParallelRank: request.dataParallelRank, kvTransferParams: request.kvTransferParams),
                    processor: ChoiceOutputProcessor(index: index, tokenizer: tokenizer, sampling: request.sampling, promptTokenIds: ids)))
            }
        }
        logRequest(request.requestId, promptTokens: request.promptTokens, sampling: request.sampling.params, n: n)
        let processors = jobs.map(\.processor)
        let promptTokens = request.promptTokens

        guard request.stream else {
            try await collect(runner.run(jobs, streaming: false))
            return .json(try renderer.response(processors, usage: Self.usage(processors, promptTokens: promptTokens, n: n, cached: true)))
        }
        let run = runner.run(jobs, streaming: true)
        let continuous = request.continuousUsage, includeUsage = request.includeUsage
        return .stream { [self] write in
            func usage(cached: Bool) -> UsageInfo { Self.usage(processors, promptTokens: promptTokens, n: n, cached: cached) }
            do {
                let opening = try renderer.openingFrames(usage: continuous ? UsageInfo(promptTokens: promptTokens, completionTokens: 0) : nil)
                for f in opening { try await write(f) }
            } catch { run.cancel(); return }
            await stream(run, write: write, frames: { event in
                guard case .delta(let index, let d) = event else { return [] }
                return try renderer.frames(index: index, delta: d, usage: continuous ? usage(cached: false) : nil)
            }, closing: {
                includeUsage ? [try renderer.usageFrame(usage(cached: false))] : []
            })
        }
    }

    /// The usage of a request's choices (`n` per prompt). Cached tokens count once per prompt, its
    /// first choice's: the other choices share that prefix. Streams report no cached tokens.
    static func usage(_ processors: [ChoiceOutputProcessor], promptTokens: Int, n: Int, cached: Bool) -> UsageInfo {
        let c = cached ? stride(from: 0, to: processors.count, by: n).reduce(0) { $0 + processors[$1].numCachedTokens } : 0
        return UsageInfo(promptTokens: promptTokens, completionTokens: processors.reduce(0) { $0 + $1.tokenIds.count },
                         cachedTokens: c > 0 ? c : nil)
    }
}
