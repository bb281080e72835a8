import Foundation
import PagodaEngine
import PagodaOpenAI

/// `POST /v1/chat/completions` (vLLM's `OpenAIServingChat`).
extension OpenAIServing {
    public func chatCompletions(_ body: Data) async throws -> ServingResponse {
        let request = try OpenAIJSON.decodeRequest(ChatCompletionRequest.self, from: body)
        try checkModel(request.model)
        try checkEngineAlive()
        if request.messages.isEmpty { throw OpenAIError.badRequest("messages must not be empty", param: "messages") }
        for (k, m) in request.messages.enumerated() {
            guard m.objectValue != nil, m["role"]?.stringValue != nil else {
                throw OpenAIError.badRequest("messages[\(k)] must be an object with a 'role'", param: "messages[\(k)]")
            }
        }
        let wantLogprobs = request.logprobs ?? false
        if let t = request.topLogprobs {
            guard wantLogprobs else { throw OpenAIError.badRequest("when using `top_logprobs`, `logprobs` must be set to true.", param: "top_logprobs") }
            guard (0...20).contains(t) else { throw OpenAIError.badRequest("top_logprobs must be between 0 and 20, got \(t)", param: "top_logprobs") }
        }
        var fields = request
        if fields.maxTokens == nil { fields.maxTokens = request.maxCompletionTokens }
        var sampling = try RequestSampling.from(fields, logprobs: wantLogprobs ? (request.topLogprobs ?? 0) : nil, vocabSize: tokenizer.vocabSize)

        let promptIds = try renderChatPrompt(messages: request.messages, tools: request.tools,
                                             addGenerationPrompt: request.addGenerationPrompt ?? true,
                                             continueFinalMessage: request.continueFinalMessage ?? false,
                                             kwargs: request.chatTemplateKwargs ?? [:], template: request.chatTemplate,
                                             addSpecialTokens: request.addSpecialTokens ?? false)
        try sampling.fit(promptLength: promptIds.count, maxModelLen: maxModelLen, defaultMaxTokens: nil)

        let requestId = Self.newRequestId("chatcmpl")
        let created = Self.now()
        let model = request.model ?? config.primaryModelName
        let arrival = Date().timeIntervalSince1970
        let jobs = (0..<sampling.n).map { i in
            ChoiceJob(index: i,
                      request: engineRequest(id: "\(requestId)-\(i)", promptTokenIds: promptIds, sampling: sampling.params(forChoice: i), arrival: arrival),
                      processor: ChoiceOutputProcessor(index: i, tokenizer: tokenizer, sampling: sampling, promptTokenIds: promptIds))
        }
        logRequest(requestId, promptTokens: promptIds.count, sampling: sampling.params, n: sampling.n)

        if request.stream ?? false {
            let includeUsage = request.streamOptions?.includeUsage ?? false
            let continuous = request.streamOptions?.continuousUsageStats ?? false
            let run = runner.run(jobs, streaming: true)
            let processors = jobs.map(\.processor)
            let n = sampling.n
            return .stream { [self] write in
                func usage() -> UsageInfo {
                    UsageInfo(promptTokens: promptIds.count, completionTokens: processors.reduce(0) { $0 + $1.tokenIds.count })
                }
                func chunk(_ choices: [ChatChoice], usage: UsageInfo? = nil) throws -> [UInt8] {
                    try ServerSentEvents.frame(json: ChatCompletionResponse(
                        id: requestId, object: "chat.completion.chunk", created: created, model: model, choices: choices, usage: usage))
                }
                // The first chunk of every choice carries the role (as OpenAI sends it).
                var opening: [[UInt8]] = []
                for i in 0..<n {
                    if let f = try? chunk([ChatChoice(index: i, delta: ChatMessage(role: "assistant", content: ""))],
                                          usage: continuous ? UsageInfo(promptTokens: promptIds.count, completionTokens: 0) : nil) {
                        opening.append(f)
                    }
                }
                do { for f in opening { try await write(f) } } catch { run.cancel(); return }
                await stream(run, write: write, frames: { event in
                    guard case .delta(let index, let d) = event else { return [] }
                    if d.text.isEmpty && d.finishReason == nil && !(wantLogprobs && !d.tokenIds.isEmpty) { return [] }
                    let lp = wantLogprobs ? self.chatLogprobs(d.tokenIds, d.logprobs) : nil
                    let choice = ChatChoice(index: index, delta: ChatMessage(role: nil, content: d.text), logprobs: lp,
                                            finishReason: d.finishReason, stopReason: d.stopReason)
                    return [try chunk([choice], usage: continuous ? usage() : nil)]
                }, closing: {
                    includeUsage ? [try chunk([], usage: usage())] : []
                })
            }
        }

        let run = runner.run(jobs, streaming: false)
        try await collect(run)
        let choices = jobs.map { job -> ChatChoice in
            let p = job.processor
            return ChatChoice(index: job.index, message: ChatMessage(role: "assistant", content: p.outputText),
                              logprobs: wantLogprobs ? chatLogprobs(p.tokenIds, p.logprobs) : nil,
                              finishReason: p.finishReason ?? "abort", stopReason: p.stopReason)
        }
        let completionTokens = jobs.reduce(0) { $0 + $1.processor.tokenIds.count }
        let cached = jobs.first?.processor.numCachedTokens ?? 0
        let response = ChatCompletionResponse(
            id: requestId, created: created, model: model, choices: choices,
            usage: UsageInfo(promptTokens: promptIds.count, completionTokens: completionTokens, cachedTokens: cached > 0 ? cached : nil))
        return .json(try OpenAIJSON.encode(response))
    }

    /// The chat rendered by the template and tokenized; template errors are 400s.
    func renderChatPrompt(messages: [JSONValue], tools: [JSONValue]?, addGenerationPrompt: Bool, continueFinalMessage: Bool,
                          kwargs: [String: JSONValue], template: String?, addSpecialTokens: Bool) throws -> [Int] {
        if addGenerationPrompt && continueFinalMessage {
            throw OpenAIError.badRequest("continue_final_message and add_generation_prompt cannot both be true", param: "continue_final_message")
        }
        let text: String
        do {
            text = try tokenizer.renderChat(ChatRenderRequest(
                messages: messages, tools: tools, addGenerationPrompt: addGenerationPrompt,
                continueFinalMessage: continueFinalMessage, extraContext: kwargs, template: template))
        } catch let e as OpenAIError {
            throw e
        } catch {
            throw OpenAIError.badRequest("chat template error: \(error)", param: "messages")
        }
        return tokenizer.encode(text, addSpecialTokens: addSpecialTokens)
    }

    func chatLogprobs(_ ids: [Int], _ logprobs: [TokenLogprob]) -> ChatLogprobs {
        var content: [ChatTokenLogprob] = []
        for (k, id) in ids.enumerated() where k < logprobs.count {
            let lp = logprobs[k]
            let text = tokenizer.tokenText(id)
            let top = lp.top.map { t -> ChatTopLogprob in
                let s = tokenizer.tokenText(t.tokenId)
                return ChatTopLogprob(token: s, logprob: Double(t.logprob), bytes: Array(s.utf8))
            }
            content.append(ChatTokenLogprob(token: text, logprob: Double(lp.logprob), bytes: Array(text.utf8), topLogprobs: top))
        }
        return ChatLogprobs(content: content)
    }
}
