import Foundation

/// vLLM's `--tool-call-parser` names Pagoda implements: how tool calls look in a model's text.
/// `hermes`: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` (Qwen2.5, Hermes);
/// `llama3_json`: the whole answer is `{"name": ..., "parameters": {...}}` (optionally after
/// `<|python_tag|>`, several joined by `; `); `mistral`: `[TOOL_CALLS][{"name": ..., "arguments": {...}}]`.
public enum ToolCallParserKind: String, Sendable, CaseIterable {
    case hermes
    case llama3Json = "llama3_json"
    case mistral

    /// Text that starts the tool-call part of an answer (streaming holds text back from here on).
    var markers: [String] {
        switch self {
        case .hermes: return ["<tool_call>"]
        case .llama3Json: return ["<|python_tag|>", "{"]
        case .mistral: return ["[TOOL_CALLS]"]
        }
    }

    /// Whether a marker may only open the answer (after leading whitespace) rather than appear anywhere.
    var markerOnlyAtStart: Bool { self == .llama3Json }

    /// The parser needs special tokens in the text (its marker is one).
    var needsSpecialTokens: Bool { self != .hermes }

    /// Splits a finished answer into content (nil when empty) and tool calls. Calls that are not
    /// valid JSON with a name leave the whole text as content, as vLLM does.
    func parse(_ text: String) -> (content: String?, calls: [ParsedToolCall]) {
        let plain = (content: text.isEmpty ? nil : text, calls: [ParsedToolCall]())
        switch self {
        case .hermes:
            guard let start = text.range(of: "<tool_call>") else { return plain }
            var calls: [ParsedToolCall] = []
            var rest = text[start.lowerBound...]
            while let open = rest.range(of: "<tool_call>") {
                let body = rest[open.upperBound...]
                let close = body.range(of: "</tool_call>")
                let json = body[..<(close?.lowerBound ?? body.endIndex)]
                guard let call = ParsedToolCall(json: String(json), argumentsKey: "arguments") else { return plain }
                calls.append(call)
                guard let close else { break }
                rest = body[close.upperBound...]
            }
            let content = String(text[..<start.lowerBound])
            return (content.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? nil : content, calls)
        case .llama3Json:
            var body = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if body.hasPrefix("<|python_tag|>") { body = String(body.dropFirst("<|python_tag|>".count)) }
            guard body.hasPrefix("{") else { return plain }
            var calls: [ParsedToolCall] = []
            for piece in Self.splitTopLevel(body, separator: ";") {
                guard
                    let call = ParsedToolCall(json: piece, argumentsKey: "parameters")
                        ?? ParsedToolCall(json: piece, argumentsKey: "arguments")
                else {
                    return plain
                }
                calls.append(call)
            }
            return (nil, calls)
        case .mistral:
            guard let start = text.range(of: "[TOOL_CALLS]") else { return plain }
            let body = text[start.upperBound...].trimmingCharacters(in: .whitespacesAndNewlines)
            guard let data = body.data(using: .utf8), let list = try? JSONSerialization.jsonObject(with: data) as? [Any] else {
                return plain
            }
            var calls: [ParsedToolCall] = []
            for item in list {
                guard let obj = item as? [String: Any], let call = ParsedToolCall(object: obj, argumentsKey: "arguments") else {
                    return plain
                }
                calls.append(call)
            }
            let content = String(text[..<start.lowerBound])
            return (content.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? nil : content, calls)
        }
    }

    /// `text` split at `separator`s outside JSON strings, objects and arrays.
    static func splitTopLevel(_ text: String, separator: Character) -> [String] {
        var out: [String] = []
        var depth = 0, inString = false, escaped = false
        var current = ""
        for c in text {
            if inString {
                if escaped { escaped = false } else if c == "\\" { escaped = true } else if c == "\"" { inString = false }
            } else if c == "\"" {
                inString = true
            } else if c == "{" || c == "[" {
                depth += 1
            } else if c == "}" || c == "]" {
                depth -= 1
            } else if c == separator && depth == 0 {
                out.append(current.trimmingCharacters(in: .whitespacesAndNewlines))
                current = ""
                continue
            }
            current.append(c)
        }
        let last = current.trimmingCharacters(in: .whitespacesAndNewlines)
        if !last.isEmpty { out.append(last) }
        return out
    }
}

/// One tool call read from a model's text: the function's name and its arguments as JSON text.
public struct ParsedToolCall: Sendable, Equatable {
    public var name: String
    public var arguments: String

    public init(name: String, arguments: String) { self.name = name; self.arguments = arguments }

    init?(json: String, argumentsKey: String) {
        guard let data = json.trimmingCharacters(in: .whitespacesAndNewlines).data(using: .utf8),
            let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        self.init(object: obj, argumentsKey: argumentsKey)
    }

    init?(object obj: [String: Any], argumentsKey: String) {
        guard let name = obj["name"] as? String, let args = obj[argumentsKey] ?? (argumentsKey == "parameters" ? nil : obj["parameters"])
        else {
            return nil
        }
        self.name = name
        if let s = args as? String {
            arguments = s
        } else if let d = try? JSONSerialization.data(withJSONObject: args, options: [.sortedKeys, .fragmentsAllowed]) {
            arguments = String(decoding: d, as: UTF8.self)
        } else {
            return nil
        }
    }
}
