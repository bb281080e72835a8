import Foundation
import PagodaEngine
import PagodaOpenAI

/// `POST /v1/completions` (vLLM's `OpenAIServingCompletion`): parse, tokenize the prompts, then the
/// shared prepare → serve path with `CompletionRenderer`.
extension OpenAIServing {
    /// `dataParallelRankHeader`: the request's `X-data-parallel-rank` header (vLLM's), if any.
    public func completions(_ body: Data, dataParallelRankHeader: String? = nil) async throws -> ServingResponse {
        let decoded = try OpenAIJSON.decodeRequestFields(CompletionRequest.self, from: body)
        var request = decoded.body
        try checkModel(request.model)
        try checkEngineAlive()
        try checkUndeclaredFields(decoded.undeclaredFields)
        guard let prompt = request.prompt else { throw OpenAIError.badRequest("missing required field 'prompt'", param: "prompt") }
        if request.suffix != nil { throw OpenAIError.badRequest("suffix is not supported", param: "suffix") }
        if let b = request.bestOf, b != (request.n ?? 1) {
            throw OpenAIError.badRequest("best_of is not supported (must equal n)", param: "best_of")
        }
        let echo = request.echo ?? false
        try checkPromptLogprobs(request.promptLogprobs, stream: request.stream ?? false)
        // The `prompt_logprobs` list is returned only when asked; echo + logprobs asks the engine too (as vLLM).
        let promptLogprobsField = request.promptLogprobs
        if echo, let k = request.logprobs { request.promptLogprobs = max(request.promptLogprobs ?? 0, k) }
        let ids = try promptTokenIds(prompt, addSpecialTokens: request.addSpecialTokens ?? true)
        // Default max_tokens 16, as OpenAI's legacy API.
        var prepared = try prepare(request, prompts: ids, idPrefix: "cmpl", defaultMaxTokens: 16, rankHeader: dataParallelRankHeader,
                                   logprobs: request.logprobs, structuredOutputs: try StructuredOutputRequest.spec(body: body))
        prepared.kvTransferParams = try kvTransferParams(decoded.undeclaredFields, request: prepared)
        // Echo repeats the prompt as served: its text, or the decoded tokens when given as ids or truncated.
        let echoTexts = echo ? prepared.prompts.enumerated().map { p, served -> String in
            if case .text(let s) = prompt, served.count == ids[p].count { return s }
            if case .texts(let a) = prompt, served.count == ids[p].count { return a[p] }
            return tokenizer.decode(served, skipSpecialTokens: false)
        } : nil
        return try await serve(prepared, renderer: CompletionRenderer(
            serving: self, request: prepared, echoTexts: echoTexts, logprobs: request.logprobs, promptLogprobs: promptLogprobsField))
    }

    /// The token ids of each prompt; token ids given directly must be in the vocabulary.
    func promptTokenIds(_ prompt: PromptInput, addSpecialTokens: Bool) throws -> [[Int]] {
        switch prompt {
        case .text(let s): return [tokenizer.encode(s, addSpecialTokens: addSpecialTokens)]
        case .texts(let a):
            if a.isEmpty { throw OpenAIError.badRequest("prompt must not be an empty list", param: "prompt") }
            return a.map { tokenizer.encode($0, addSpecialTokens: addSpecialTokens) }
        case .tokens(let t):
            try checkTokenIds(t, param: "prompt")
            return [t]
        case .tokenLists(let l):
            if l.isEmpty { throw OpenAIError.badRequest("prompt must not be an empty list", param: "prompt") }
            for t in l { try checkTokenIds(t, param: "prompt") }
            return l
        }
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

/// Renders completion choices as `text_completion` objects. With `echo`, each choice starts with
/// its prompt's text (a chunk of its own when streaming); logprob text offsets count from there.
final class CompletionRenderer: ChoiceRenderer, @unchecked Sendable {
    let serving: OpenAIServing
    let request: ServingRequest
    let echoTexts: [String]?
    /// `logprobs` (top alternatives per token) when asked; with `echo` the prompt's tokens come first.
    let logprobs: Int?
    /// vLLM's `prompt_logprobs` of the request (the list each whole choice carries).
    let promptLogprobs: Int?
    var wantLogprobs: Bool { logprobs != nil }
    /// Streaming state: the choices whose prompt was echoed, and each choice's text offset.
    private var echoed: Set<Int> = []
    private var offsets: [Int]

    init(serving: OpenAIServing, request: ServingRequest, echoTexts: [String]?, logprobs: Int?, promptLogprobs: Int?) {
        self.serving = serving; self.request = request; self.echoTexts = echoTexts
        self.logprobs = logprobs; self.promptLogprobs = promptLogprobs
        offsets = Array(repeating: 0, count: request.prompts.count * request.n)
    }

    private func chunk(_ choices: [CompletionChoice], usage: UsageInfo?) throws -> [UInt8] {
        try ServerSentEvents.frame(json: CompletionResponse(
            id: request.requestId, created: request.created, model: request.model, choices: choices, usage: usage))
    }

    func openingFrames(usage: UsageInfo?) throws -> [[UInt8]] { [] }

    func frames(index: Int, delta d: ChoiceDelta, usage: UsageInfo?) throws -> [[UInt8]] {
        var frames: [[UInt8]] = []
        if let echoTexts, !echoed.contains(index) {
            echoed.insert(index)
            let promptText = echoTexts[index / request.n]
            offsets[index] = promptText.count
            var lp: CompletionLogprobs? = nil
            if let k = logprobs, let plp = d.promptLogprobs {
                offsets[index] = 0
                lp = serving.echoedPromptLogprobs(request.prompts[index / request.n], plp, top: k, offset: &offsets[index])
            }
            frames.append(try chunk([CompletionChoice(index: index, text: promptText, logprobs: lp)], usage: nil))
        }
        if d.text.isEmpty && d.finishReason == nil && !wantLogprobs { return frames }
        let lp = wantLogprobs ? serving.completionLogprobs(d.tokenIds, d.logprobs, offset: &offsets[index]) : nil
        let choice = CompletionChoice(index: index, text: d.text, logprobs: lp, finishReason: d.finishReason, stopReason: d.stopReason)
        frames.append(try chunk([choice], usage: usage))
        return frames
    }

    func usageFrame(_ usage: UsageInfo) throws -> [UInt8] { try chunk([], usage: usage) }

    func response(_ choices: [ChoiceOutputProcessor], usage: UsageInfo) throws -> Data {
        let rendered = choices.map { p -> CompletionChoice in
            let prefix = echoTexts?[p.index / request.n] ?? ""
            let promptIds = request.prompts[p.index / request.n]
            var offset = prefix.count
            var lp: CompletionLogprobs? = nil
            if let k = logprobs {
                var l = CompletionLogprobs()
                if echoTexts != nil, let plp = p.promptLogprobs {
                    offset = 0
                    l = serving.echoedPromptLogprobs(promptIds, plp, top: k, offset: &offset)
                }
                l.append(serving.completionLogprobs(p.tokenIds, p.logprobs, offset: &offset))
                lp = l
            }
            let plist = promptLogprobs.flatMap { k in p.promptLogprobs.map { serving.promptLogprobsList(promptIds, $0, top: k) } }
            return CompletionChoice(index: p.index, text: prefix + p.outputText, logprobs: lp,
                                    finishReason: p.finishReason ?? "abort", stopReason: p.stopReason, promptLogprobs: plist)
        }
        return try OpenAIJSON.encode(CompletionResponse(
            id: request.requestId, created: request.created, model: request.model, choices: rendered, usage: usage,
            kvTransferParams: serving.kvTransferParamsJSON(choices)))
    }
}
