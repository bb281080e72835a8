import Foundation
import PagodaEngine
import PagodaOpenAI

/// `POST /v1/completions` (vLLM's `OpenAIServingCompletion`).
extension OpenAIServing {
    public func completions(_ body: Data) async throws -> ServingResponse {
        let request = try OpenAIJSON.decodeRequest(CompletionRequest.self, from: body)
        try checkModel(request.model)
        try checkEngineAlive()
        guard let prompt = request.prompt else { throw OpenAIError.badRequest("missing required field 'prompt'", param: "prompt") }
        if request.suffix != nil { throw OpenAIError.badRequest("suffix is not supported", param: "suffix") }
        if let b = request.bestOf, b != (request.n ?? 1) {
            throw OpenAIError.badRequest("best_of is not supported (must equal n)", param: "best_of")
        }
        let echo = request.echo ?? false
        if echo && request.logprobs != nil {
            throw OpenAIError.badRequest("echo together with logprobs needs prompt logprobs, which this server does not return", param: "echo")
        }
        var sampling = try RequestSampling.from(request, logprobs: request.logprobs, vocabSize: tokenizer.vocabSize)

        // Each prompt: its token ids and (for echo) its text.
        let addSpecial = request.addSpecialTokens ?? true
        var prompts: [(ids: [Int], text: String)] = []
        switch prompt {
        case .text(let s): prompts = [(tokenizer.encode(s, addSpecialTokens: addSpecial), s)]
        case .texts(let a):
            if a.isEmpty { throw OpenAIError.badRequest("prompt must not be an empty list", param: "prompt") }
            prompts = a.map { (tokenizer.encode($0, addSpecialTokens: addSpecial), $0) }
        case .tokens(let t):
            try checkTokenIds(t, param: "prompt")
            prompts = [(t, echo ? tokenizer.decode(t, skipSpecialTokens: false) : "")]
        case .tokenLists(let l):
            if l.isEmpty { throw OpenAIError.badRequest("prompt must not be an empty list", param: "prompt") }
            for t in l { try checkTokenIds(t, param: "prompt") }
            prompts = l.map { ($0, echo ? tokenizer.decode($0, skipSpecialTokens: false) : "") }
        }
        // Every prompt must fit with its max_tokens (default 16, as OpenAI's legacy API).
        var maxTokensPerPrompt: [Int] = []
        for p in prompts {
            var s = sampling
            try s.fit(promptLength: p.ids.count, maxModelLen: maxModelLen, defaultMaxTokens: 16)
            maxTokensPerPrompt.append(s.params.maxTokens)
        }
        sampling.params.maxTokens = maxTokensPerPrompt.max() ?? sampling.params.maxTokens

        let requestId = Self.newRequestId("cmpl")
        let created = Self.now()
        let model = request.model ?? config.primaryModelName
        let arrival = Date().timeIntervalSince1970
        let n = sampling.n
        var jobs: [ChoiceJob] = []
        for (p, prompt) in prompts.enumerated() {
            for i in 0..<n {
                let index = p * n + i
                var params = sampling.params(forChoice: i)
                params.maxTokens = maxTokensPerPrompt[p]
                jobs.append(ChoiceJob(
                    index: index,
                    request: engineRequest(id: "\(requestId)-\(index)", promptTokenIds: prompt.ids, sampling: params, arrival: arrival),
                    processor: ChoiceOutputProcessor(index: index, tokenizer: tokenizer, sampling: sampling, promptTokenIds: prompt.ids)))
            }
        }
        logRequest(requestId, promptTokens: prompts.reduce(0) { $0 + $1.ids.count }, sampling: sampling.params, n: n)
        let promptTokens = prompts.reduce(0) { $0 + $1.ids.count }
        let wantLogprobs = request.logprobs != nil

        if request.stream ?? false {
            let includeUsage = request.streamOptions?.includeUsage ?? false
            let continuous = request.streamOptions?.continuousUsageStats ?? false
            let run = runner.run(jobs, streaming: true)
            let processors = jobs.map(\.processor)
            let jobCount = jobs.count
            let promptTexts = prompts.map(\.text)
            return .stream { [self] write in
                var echoed = Set<Int>()
                var offsets = [Int](repeating: 0, count: jobCount)
                func usage() -> UsageInfo {
                    UsageInfo(promptTokens: promptTokens, completionTokens: processors.reduce(0) { $0 + $1.tokenIds.count })
                }
                await stream(run, write: write, frames: { event in
                    guard case .delta(let index, let d) = event else { return [] }
                    var frames: [[UInt8]] = []
                    if echo && !echoed.contains(index) {
                        echoed.insert(index)
                        let promptText = promptTexts[index / n]
                        offsets[index] = promptText.count
                        let chunk = CompletionResponse(id: requestId, created: created, model: model,
                                                       choices: [CompletionChoice(index: index, text: promptText)], usage: nil)
                        frames.append(try ServerSentEvents.frame(json: chunk))
                    }
                    if d.text.isEmpty && d.finishReason == nil && !wantLogprobs { return frames }
                    let lp = wantLogprobs ? self.completionLogprobs(d.tokenIds, d.logprobs, offset: &offsets[index]) : nil
                    let choice = CompletionChoice(index: index, text: d.text, logprobs: lp, finishReason: d.finishReason, stopReason: d.stopReason)
                    let chunk = CompletionResponse(id: requestId, created: created, model: model, choices: [choice],
                                                   usage: continuous ? usage() : nil)
                    frames.append(try ServerSentEvents.frame(json: chunk))
                    return frames
                }, closing: {
                    guard includeUsage else { return [] }
                    let chunk = CompletionResponse(id: requestId, created: created, model: model, choices: [], usage: usage())
                    return [try ServerSentEvents.frame(json: chunk)]
                })
            }
        }

        let run = runner.run(jobs, streaming: false)
        try await collect(run)
        var choices: [CompletionChoice] = []
        var completionTokens = 0
        for job in jobs {
            let p = job.processor
            completionTokens += p.tokenIds.count
            let prefix = echo ? prompts[job.index / n].text : ""
            var offset = prefix.count
            let lp = wantLogprobs ? completionLogprobs(p.tokenIds, p.logprobs, offset: &offset) : nil
            choices.append(CompletionChoice(index: job.index, text: prefix + p.outputText, logprobs: lp,
                                            finishReason: p.finishReason ?? "abort", stopReason: p.stopReason))
        }
        let cached = jobs.map(\.processor.numCachedTokens).reduce(0, +)
        let response = CompletionResponse(
            id: requestId, created: created, model: model, choices: choices,
            usage: UsageInfo(promptTokens: promptTokens, completionTokens: completionTokens, cachedTokens: cached > 0 ? cached : nil))
        return .json(try OpenAIJSON.encode(response))
    }

    /// Legacy-format logprobs for `ids`; `offset` is the running text offset (characters).
    func completionLogprobs(_ ids: [Int], _ logprobs: [TokenLogprob], offset: inout Int) -> CompletionLogprobs {
        var out = CompletionLogprobs()
        for (k, id) in ids.enumerated() {
            let text = tokenizer.tokenText(id)
            out.tokens.append(text)
            out.textOffset.append(offset)
            offset += text.count
            if k < logprobs.count {
                let lp = logprobs[k]
                out.tokenLogprobs.append(Double(lp.logprob))
                var top: [String: Double] = [:]
                for t in lp.top { top[tokenizer.tokenText(t.tokenId)] = Double(t.logprob) }
                top[text] = Double(lp.logprob)
                out.topLogprobs.append(top)
            } else {
                out.tokenLogprobs.append(nil)
                out.topLogprobs.append(nil)
            }
        }
        return out
    }
}
