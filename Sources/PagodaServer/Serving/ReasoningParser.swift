/// `--reasoning-parser`: how a reasoning model's `<think>…</think>` is split from its answer
/// (vLLM's `DeepSeekR1ReasoningParser` and `Qwen3ReasoningParser`), on text, so it works whether
/// or not the tokenizer has the tags as special tokens.
///
/// - `deepseek_r1`: the chat template may already have opened `<think>` in the prompt, so the
///   output up to `</think>` is reasoning (all of it when `</think>` never comes); a `<think>` in
///   the output is dropped.
/// - `qwen3`: only an explicit `<think>…</think>` block is reasoning; output without both tags is
///   all content (with `enable_thinking: false` the template closes the block in the prompt).
public enum ReasoningParserKind: String, Sendable, CaseIterable {
    case deepseekR1 = "deepseek_r1"
    case qwen3

    static let startTag = "<think>"
    static let endTag = "</think>"

    /// A whole output split into reasoning and content; an empty content is nil, as vLLM returns it.
    public func split(_ output: String) -> (reasoning: String?, content: String?) {
        let (start, end) = (Self.startTag, Self.endTag)
        if self == .qwen3 && (output.range(of: start) == nil || output.range(of: end) == nil) { return (nil, output) }
        var rest = Substring(output)
        if let r = rest.range(of: start) { rest = rest[r.upperBound...] }
        guard let e = rest.range(of: end) else { return (String(rest), nil) }
        let content = rest[e.upperBound...]
        return (String(rest[..<e.lowerBound]), content.isEmpty ? nil : String(content))
    }
}

/// The streaming side of `ReasoningParserKind`: text deltas in, reasoning and content deltas out.
/// A tail that could be the start of a tag is held back until the next delta decides it (or the
/// end of the output releases it).
final class ReasoningStreamParser {
    private enum Phase { case beforeStart, reasoning, content }
    private let kind: ReasoningParserKind
    private var phase: Phase
    /// Text received and not yet handed out (a possible tag prefix).
    private var pending = ""

    init(kind: ReasoningParserKind) {
        self.kind = kind
        phase = kind == .deepseekR1 ? .reasoning : .beforeStart
    }

    /// Splits one delta; `final` releases any held-back tail.
    func feed(_ text: String, final: Bool = false) -> (reasoning: String, content: String) {
        pending += text
        var reasoning = "", content = ""
        while true {
            switch phase {
            case .content:
                content += pending
                pending = ""
                return (reasoning, content)
            case .beforeStart:
                if let r = pending.range(of: ReasoningParserKind.startTag) {
                    content += pending[..<r.lowerBound]
                    pending = String(pending[r.upperBound...])
                    phase = .reasoning
                    continue
                }
                let keep = final ? 0 : Self.partialTagLength(pending, tags: [ReasoningParserKind.startTag])
                content += pending.dropLast(keep)
                pending = String(pending.suffix(keep))
                return (reasoning, content)
            case .reasoning:
                // deepseek_r1: a `<think>` the model writes itself is dropped.
                if kind == .deepseekR1, let s = pending.range(of: ReasoningParserKind.startTag),
                    pending.range(of: ReasoningParserKind.endTag).map({ s.lowerBound < $0.lowerBound }) ?? true
                {
                    pending.removeSubrange(s)
                }
                if let r = pending.range(of: ReasoningParserKind.endTag) {
                    reasoning += pending[..<r.lowerBound]
                    pending = String(pending[r.upperBound...])
                    phase = .content
                    continue
                }
                let tags = kind == .deepseekR1 ? [ReasoningParserKind.endTag, ReasoningParserKind.startTag] : [ReasoningParserKind.endTag]
                let keep = final ? 0 : Self.partialTagLength(pending, tags: tags)
                reasoning += pending.dropLast(keep)
                pending = String(pending.suffix(keep))
                return (reasoning, content)
            }
        }
    }

    /// The length of the longest tail of `text` that is a proper prefix of one of `tags`.
    static func partialTagLength(_ text: String, tags: [String]) -> Int {
        var best = 0
        for tag in tags {
            for n in stride(from: min(tag.count - 1, text.count), to: best, by: -1) where text.hasSuffix(tag.prefix(n)) {
                best = n
                break
            }
        }
        return best
    }
}
