import Foundation
import PagodaOpenAI
import PagodaStructured

/// The chat renderer's tool-calling side: whole answers split into content and `tool_calls`,
/// streamed answers through one `ToolCallStream` per choice.
extension ChatRenderer {
    func toolFrames(index: Int, delta d: ChoiceDelta, usage: UsageInfo?) throws -> [[UInt8]] {
        let stream = toolStreams[index] ?? ToolCallStream(plan: tools)
        toolStreams[index] = stream
        return try stream.step(d.text, finishReason: d.finishReason).map { message, finish in
            try chunk(
                [ChatChoice(index: index, delta: message, finishReason: finish, stopReason: finish == nil ? nil : d.stopReason)],
                usage: usage)
        }
    }

    func toolChoice(_ p: ChoiceOutputProcessor) -> ChatChoice {
        let parsed = tools.parse(p.outputText)
        let calls = parsed.calls?.map {
            ChatToolCall(id: tools.newCallId(), function: ChatFunctionCall(name: $0.name, arguments: $0.arguments))
        }
        return ChatChoice(
            index: p.index, message: ChatMessage(role: "assistant", content: parsed.content, toolCalls: calls),
            logprobs: wantLogprobs ? serving.chatLogprobs(p.tokenIds, p.logprobs) : nil,
            finishReason: tools.finishReason(p.finishReason ?? "abort", madeCalls: calls != nil), stopReason: p.stopReason)
    }
}

extension OpenAIServing {
    /// The request's one constraint: from the tool plan (`required`, named) or from the structured-output fields.
    func structuredOutputs(body: Data, tools: ChatToolPlan) throws -> StructuredOutputSpec? {
        let fromFields = try StructuredOutputRequest.spec(body: body)
        guard let fromTools = tools.structuredOutputs else { return fromFields }
        if fromFields != nil {
            throw OpenAIError.badRequest(
                "tool_choice \"required\" or a named function cannot be combined with a structured output constraint",
                param: "tool_choice")
        }
        return fromTools
    }
}
