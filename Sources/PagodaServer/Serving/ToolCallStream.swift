import PagodaOpenAI

/// Turns one streamed chat choice into OpenAI's tool-call deltas. A named function streams its
/// arguments as they are generated (the first delta carries the call's id and name); `required`
/// answers are complete JSON only at the end, so their calls come in one delta then; `auto` streams
/// text as content until the parser's marker could begin, holds the rest, and at the end sends
/// the parsed calls (or, when none parse, the held text as content).
final class ToolCallStream {
    let plan: ChatToolPlan
    private var text: [UInt8] = []
    /// Bytes of `text` already sent as content or arguments.
    private var sent = 0
    /// From `sent` on, the text belongs to a tool call (auto: a marker was seen).
    private var holding = false
    /// auto + marker-at-start parsers: the answer turned out to be plain text.
    private var answerIsText = false
    private var callId: String?

    init(plan: ChatToolPlan) {
        self.plan = plan
        if plan.mode == .required { holding = true }
    }

    /// The deltas (message, finish reason) for a new piece of text and, at the end, the finish reason.
    func step(_ piece: String, finishReason: String?) -> [(ChatMessage, String?)] {
        text += Array(piece.utf8)
        var out: [(ChatMessage, String?)] = []
        switch plan.mode {
        case .plainText:
            if !piece.isEmpty { out.append((ChatMessage(role: nil, content: piece), nil)) }
            sent = text.count
        case .named(let name):
            let args = String(decoding: text[sent...], as: UTF8.self)
            sent = text.count
            if callId == nil {
                callId = plan.newCallId()
                out.append(
                    (
                        ChatMessage(
                            role: nil, content: nil,
                            toolCalls: [
                                ChatToolCall(index: 0, id: callId, function: ChatFunctionCall(name: name, arguments: args))
                            ]), nil
                    ))
            } else if !args.isEmpty {
                out.append(
                    (
                        ChatMessage(
                            role: nil, content: nil,
                            toolCalls: [
                                ChatToolCall(index: 0, id: nil, type: nil, function: ChatFunctionCall(name: nil, arguments: args))
                            ]), nil
                    ))
            }
        case .required:
            break
        case .auto(let parser):
            if !holding { streamContent(parser, final: finishReason != nil, into: &out) }
        }
        guard let finishReason else { return out }
        var madeCalls = false
        if case .named = plan.mode { madeCalls = true }
        if holding {
            let all = String(decoding: text, as: UTF8.self)
            let parsed = plan.parse(all)
            if let calls = parsed.calls {
                madeCalls = true
                let deltas = calls.enumerated().map { k, c in
                    ChatToolCall(index: k, id: plan.newCallId(), function: ChatFunctionCall(name: c.name, arguments: c.arguments))
                }
                out.append((ChatMessage(role: nil, content: nil, toolCalls: deltas), nil))
            } else if sent < text.count {
                out.append((ChatMessage(role: nil, content: String(decoding: text[sent...], as: UTF8.self)), nil))
            }
            sent = text.count
        }
        out.append((ChatMessage(role: nil, content: nil), plan.finishReason(finishReason, madeCalls: madeCalls)))
        return out
    }

    /// Sends the text up to where a marker starts or could start; from a marker on, holds.
    private func streamContent(_ parser: ToolCallParserKind, final: Bool, into out: inout [(ChatMessage, String?)]) {
        var upTo = text.count
        if parser.markerOnlyAtStart && !answerIsText {
            // Only a marker at the start (after whitespace) counts.
            var k = 0
            while k < text.count, text[k] == 0x20 || text[k] == 0x0A || text[k] == 0x09 || text[k] == 0x0D { k += 1 }
            let rest = Array(text[k...])
            if rest.isEmpty && !final { return }
            for m in parser.markers {
                let mb = Array(m.utf8)
                if rest.starts(with: mb) { holding = true; return }
                if !final && mb.starts(with: rest) { return }  // may still become the marker
            }
            answerIsText = true
        } else if !parser.markerOnlyAtStart {
            for m in parser.markers {
                let mb = Array(m.utf8)
                if let at = Self.find(mb, in: text, from: sent) {
                    upTo = min(upTo, at)
                    holding = true
                } else if !final {
                    // Hold back a suffix that is a prefix of the marker.
                    var keep = min(mb.count - 1, text.count - sent)
                    while keep > 0 && !mb.starts(with: text[(text.count - keep)...]) { keep -= 1 }
                    upTo = min(upTo, text.count - keep)
                }
            }
        }
        if upTo > sent {
            out.append((ChatMessage(role: nil, content: String(decoding: text[sent..<upTo], as: UTF8.self)), nil))
            sent = upTo
        }
    }

    static func find(_ needle: [UInt8], in hay: [UInt8], from: Int) -> Int? {
        guard needle.count <= hay.count else { return nil }
        var i = from
        while i + needle.count <= hay.count {
            if hay[i] == needle[0] && hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}
