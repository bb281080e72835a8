import Foundation
import PagodaEngine
import PagodaOpenAI

/// `POST /v1/chat/completions` (vLLM's `OpenAIServingChat`).
extension OpenAIServing {
    /// `dataParallelRankHeader`: the request's `X-data-parallel-rank` header (vLLM's), if any.
    public func chatCompletions(_ body: Data, dataParallelRankHeader: String? = nil) async throws -> ServingResponse {
        let decoded = try OpenAIJSON.decodeRequestFields(ChatCompletionRequest.self, from: body)
        var request = decoded.body
        try checkModel(request.model)
        try checkEngineAlive()
        try checkUndeclaredFields(decoded.undeclaredFields)
        if request.messages.isEmpty { throw OpenAIError.badRequest("messages must not be empty", param: "messages") }
        for (k, m) in request.messages.enumerated() {
            guard m.objectValue != nil, m["role"]?.stringValue != nil else {
                throw OpenAIError.badRequest("messages[\(k)] must be an object with a 'role'", param: "messages[\(k)]")
            }
        }
        let tools = try ChatToolPlan.resolve(tools: request.tools, toolChoice: request.toolChoice, body: body, config: config)
        if tools.needsSpecialTokens && request.skipSpecialTokens == nil { request.skipSpecialTokens = false }
        let wantLogprobs = request.logprobs ?? false
        if request.topLogprobs != nil && !wantLogprobs {
            throw OpenAIError.badRequest("when using `top_logprobs`, `logprobs` must be set to true.", param: "top_logprobs")
        }
        if request.maxTokens == nil { request.maxTokens = request.maxCompletionTokens }
        try checkPromptLogprobs(request.promptLogprobs, stream: request.stream ?? false)
        var kwargs = request.chatTemplateKwargs ?? [:]
        if let documents = request.documents { kwargs["documents"] = .array(documents) }
        let promptIds = try renderChatPrompt(
            messages: ToolMessages.forTemplate(request.messages), tools: request.tools,
            addGenerationPrompt: request.addGenerationPrompt ?? true,
            continueFinalMessage: request.continueFinalMessage ?? false,
            kwargs: kwargs, template: request.chatTemplate,
            addSpecialTokens: request.addSpecialTokens ?? false)
        var prepared = try prepare(
            request, prompts: [promptIds], idPrefix: "chatcmpl", defaultMaxTokens: nil, rankHeader: dataParallelRankHeader,
            logprobs: wantLogprobs ? (request.topLogprobs ?? 0) : nil, logprobsParam: "top_logprobs",
            structuredOutputs: try structuredOutputs(body: body, tools: tools))
        prepared.kvTransferParams = try kvTransferParams(decoded.undeclaredFields, request: prepared)
        return try await serve(
            prepared,
            renderer: ChatRenderer(
                serving: self, request: prepared, wantLogprobs: wantLogprobs, tools: tools,
                includeReasoning: request.includeReasoning ?? true))
    }

    /// The chat rendered by the template and tokenized; template errors are 400s.
    func renderChatPrompt(
        messages: [JSONValue], tools: [JSONValue]?, addGenerationPrompt: Bool, continueFinalMessage: Bool,
        kwargs: [String: JSONValue], template: String?, addSpecialTokens: Bool
    ) throws -> [Int] {
        if addGenerationPrompt && continueFinalMessage {
            throw OpenAIError.badRequest(
                "continue_final_message and add_generation_prompt cannot both be true", param: "continue_final_message")
        }
        let template = template ?? config.chat.chatTemplate
        let messages = try contentNormalizedMessages(messages, template: template, hasTools: tools != nil)
        let text: String
        do {
            text = try tokenizer.renderChat(
                ChatRenderRequest(
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

/// Renders chat choices as `chat.completion` objects; when streaming, every choice opens with a
/// chunk carrying its role (as OpenAI sends it) and then streams content deltas.
final class ChatRenderer: ChoiceRenderer, @unchecked Sendable {
    let serving: OpenAIServing
    let request: ServingRequest
    let wantLogprobs: Bool
    /// With `--reasoning-parser`: each choice's streaming splitter of `<think>…</think>`.
    private var reasoningParsers: [Int: ReasoningStreamParser] = [:]
    /// Tool calling (`ChatRenderer+ToolCalls`): with a mode other than none, text goes through `toolStreams`.
    let tools: ChatToolPlan
    var toolStreams: [Int: ToolCallStream] = [:]
    /// vLLM's `include_reasoning`: false drops the reasoning part (the split still happens).
    let includeReasoning: Bool

    init(
        serving: OpenAIServing, request: ServingRequest, wantLogprobs: Bool, tools: ChatToolPlan = .disabled,
        includeReasoning: Bool = true
    ) {
        self.serving = serving; self.request = request; self.wantLogprobs = wantLogprobs; self.tools = tools
        self.includeReasoning = includeReasoning
        if let kind = serving.config.chat.reasoningParser, request.stream {
            for i in 0..<(request.prompts.count * request.n) { reasoningParsers[i] = ReasoningStreamParser(kind: kind) }
        }
    }

    func chunk(_ choices: [ChatChoice], usage: UsageInfo?) throws -> [UInt8] {
        try ServerSentEvents.frame(
            json: ChatCompletionResponse(
                id: request.requestId, object: "chat.completion.chunk", created: request.created, model: request.model,
                choices: choices, usage: usage))
    }

    func openingFrames(usage: UsageInfo?) throws -> [[UInt8]] {
        try (0..<request.n).map { try chunk([ChatChoice(index: $0, delta: ChatMessage(role: "assistant", content: ""))], usage: usage) }
    }

    func frames(index: Int, delta d: ChoiceDelta, usage: UsageInfo?) throws -> [[UInt8]] {
        if tools.mode != .plainText { return try toolFrames(index: index, delta: d, usage: usage) }
        var message = ChatMessage(role: nil, content: d.text)
        if let parser = reasoningParsers[index] {
            let (reasoning, content) = parser.feed(d.text, final: d.finishReason != nil)
            message = ChatMessage(
                role: nil, content: content.isEmpty ? nil : content,
                reasoningContent: reasoning.isEmpty || !includeReasoning ? nil : reasoning)
        }
        let hasText = message.content.map { !$0.isEmpty } ?? false || message.reasoningContent != nil
        if !hasText && d.finishReason == nil && !(wantLogprobs && !d.tokenIds.isEmpty) { return [] }
        let lp = wantLogprobs ? serving.chatLogprobs(d.tokenIds, d.logprobs) : nil
        let choice = ChatChoice(index: index, delta: message, logprobs: lp, finishReason: d.finishReason, stopReason: d.stopReason)
        return [try chunk([choice], usage: usage)]
    }

    func usageFrame(_ usage: UsageInfo) throws -> [UInt8] { try chunk([], usage: usage) }

    func response(_ choices: [ChoiceOutputProcessor], usage: UsageInfo) throws -> Data {
        let rendered = choices.map { p -> ChatChoice in
            if tools.mode != .plainText { return toolChoice(p) }
            var message = ChatMessage(role: "assistant", content: p.outputText)
            if let kind = serving.config.chat.reasoningParser {
                let (reasoning, content) = kind.split(p.outputText)
                message = ChatMessage(role: "assistant", content: content, reasoningContent: includeReasoning ? reasoning : nil)
            }
            return ChatChoice(
                index: p.index, message: message,
                logprobs: wantLogprobs ? serving.chatLogprobs(p.tokenIds, p.logprobs) : nil,
                finishReason: p.finishReason ?? "abort", stopReason: p.stopReason)
        }
        let promptLogprobs = request.sampling.params.promptLogprobs.flatMap { k in
            choices.first?.promptLogprobs.map { serving.promptLogprobsList(request.prompts[0], $0, top: k) }
        }
        return try OpenAIJSON.encode(
            ChatCompletionResponse(
                id: request.requestId, created: request.created, model: request.model, choices: rendered, usage: usage,
                promptLogprobs: promptLogprobs, kvTransferParams: serving.kvTransferParamsJSON(choices)))
    }
}
