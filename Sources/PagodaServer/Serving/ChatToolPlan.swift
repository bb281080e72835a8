import Foundation
import PagodaOpenAI
import PagodaStructured

/// How one chat request's `tools` and `tool_choice` are served, decided before generation (vLLM's
/// rules): `none` renders the tools and parses nothing; `auto` (the default when tools are given)
/// needs `--enable-auto-tool-choice` and parses the answer with the `--tool-call-parser`;
/// `required` and a named function constrain decoding with a JSON schema built from the tools'
/// `parameters` (a list of `{"name", "parameters"}` objects, or the named function's arguments).
struct ChatToolPlan {
    enum Mode: Equatable {
        /// `tool_choice: "none"` or no tools: the answer is text.
        case plainText
        case auto(ToolCallParserKind)
        case required
        case named(String)
    }

    var mode: Mode
    /// The constraint of `required` / named modes.
    var structuredOutputs: StructuredOutputSpec?

    static let disabled = ChatToolPlan(mode: .plainText, structuredOutputs: nil)

    static func resolve(tools: [JSONValue]?, toolChoice: JSONValue?, body: Data, config: ServerConfig) throws -> ChatToolPlan {
        let tools = tools ?? []
        // Tool definitions as order-keeping JSON (their schemas become grammars).
        let ordered = (try? StructuredJSON.parse(String(decoding: body, as: UTF8.self)))?["tools"]?.arrayValue ?? []
        var functions: [(name: String, parameters: StructuredJSON)] = []
        for (k, tool) in tools.enumerated() {
            guard tool["type"]?.stringValue == "function", let name = tool["function"]?["name"]?.stringValue, !name.isEmpty else {
                throw OpenAIError.badRequest("tools[\(k)] must be {\"type\": \"function\", \"function\": {\"name\": ...}}", param: "tools")
            }
            var params = StructuredJSON.object([("type", .string("object"))])
            if k < ordered.count, let p = ordered[k]["function"]?["parameters"], p != .null {
                guard p.objectPairs != nil else {
                    throw OpenAIError.badRequest("tools[\(k)].function.parameters must be an object", param: "tools")
                }
                params = p
            }
            functions.append((name, params))
        }
        let choice = toolChoice ?? (tools.isEmpty ? .string("none") : .string("auto"))
        switch choice {
        case .string("none"):
            return .disabled
        case .string("auto"):
            guard !tools.isEmpty else {
                throw OpenAIError.badRequest("When using `tool_choice`, `tools` must be set.", param: "tool_choice")
            }
            guard config.enableAutoToolChoice, let parser = config.toolCallParser else {
                throw OpenAIError.badRequest(
                    "\"auto\" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set", param: "tool_choice")
            }
            return ChatToolPlan(mode: .auto(parser), structuredOutputs: nil)
        case .string("required"):
            guard !tools.isEmpty else {
                throw OpenAIError.badRequest("When using `tool_choice`, `tools` must be set.", param: "tool_choice")
            }
            let alternatives = functions.map { f in
                StructuredJSON.object([
                    ("type", .string("object")),
                    ("properties", .object([("name", .object([("const", .string(f.name))])), ("parameters", f.parameters)])),
                    ("required", .array([.string("name"), .string("parameters")])),
                ])
            }
            var schema: [(key: String, value: StructuredJSON)] = [("type", .string("array")), ("minItems", .number("1"))]
            if case .bool(false)? = (try? StructuredJSON.parse(String(decoding: body, as: UTF8.self)))?["parallel_tool_calls"] {
                schema.append(("maxItems", .number("1")))
            }
            schema.append(("items", .object([("anyOf", .array(alternatives))])))
            let spec = StructuredOutputSpec.jsonSchema(StructuredJSON.object(schema).text)
            try StructuredOutputRequest.check(spec, param: "tools")
            return ChatToolPlan(mode: .required, structuredOutputs: spec)
        case .object where choice["type"]?.stringValue == "function" && choice["function"]?["name"]?.stringValue != nil:
            let name = choice["function"]?["name"]?.stringValue ?? ""
            guard !tools.isEmpty else {
                throw OpenAIError.badRequest("When using `tool_choice`, `tools` must be set.", param: "tool_choice")
            }
            guard let f = functions.first(where: { $0.name == name }) else {
                throw OpenAIError.badRequest("Tool '\(name)' has not been passed in `tools`.", param: "tool_choice")
            }
            let spec = StructuredOutputSpec.jsonSchema(f.parameters.text)
            try StructuredOutputRequest.check(spec, param: "tools")
            return ChatToolPlan(mode: .named(name), structuredOutputs: spec)
        default:
            throw OpenAIError.badRequest(
                "tool_choice must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}",
                param: "tool_choice")
        }
    }

    /// The parser's marker is a special token: keep special tokens in the text it reads.
    var needsSpecialTokens: Bool { if case .auto(let p) = mode { return p.needsSpecialTokens }; return false }

    /// vLLM's tool-call id form (Mistral's templates want 9 alphanumerics).
    func newCallId() -> String {
        if case .auto(.mistral) = mode {
            let chars = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
            return String((0..<9).map { _ in chars.randomElement()! })
        }
        return "chatcmpl-tool-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
    }

    /// The calls and content of a finished answer; nil calls when the answer holds none (or, for
    /// `required`, ended before its JSON was complete).
    func parse(_ text: String) -> (content: String?, calls: [ParsedToolCall]?) {
        switch mode {
        case .plainText: return (text, nil)
        case .named(let name): return (nil, [ParsedToolCall(name: name, arguments: text)])
        case .required:
            guard let data = text.data(using: .utf8), let list = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]] else {
                return (text, nil)
            }
            let calls = list.compactMap { ParsedToolCall(object: $0, argumentsKey: "parameters") }
            return calls.count == list.count && !calls.isEmpty ? (nil, calls) : (text, nil)
        case .auto(let parser):
            let r = parser.parse(text)
            return r.calls.isEmpty ? (text, nil) : (r.content, r.calls)
        }
    }

    /// The finish reason a tool answer reports: `tool_calls` when calls were made (not for a named
    /// function, which OpenAI and vLLM finish with `stop`); a length cut stays `length`.
    func finishReason(_ engineReason: String?, madeCalls: Bool) -> String? {
        guard madeCalls, engineReason != "length" else { return engineReason }
        if case .named = mode { return engineReason }
        return "tool_calls"
    }
}

/// Assistant messages' `tool_calls[].function.arguments` arrive as JSON text; chat templates expect
/// a mapping (they render it with `tojson` or iterate it), so it is parsed first, as vLLM does. The
/// `null` content OpenAI clients send beside tool calls becomes "" (templates test it with `in`).
enum ToolMessages {
    static func forTemplate(_ messages: [JSONValue]) -> [JSONValue] {
        messages.map { m in
            guard case .object(var o) = m, case .array(let calls)? = o["tool_calls"] else { return m }
            if o["content"] == nil || o["content"] == .null { o["content"] = .string("") }
            o["tool_calls"] = .array(
                calls.map { call in
                    guard case .object(var c) = call, case .object(var f)? = c["function"], case .string(let args)? = f["arguments"],
                        let parsed = try? JSONDecoder().decode(JSONValue.self, from: Data(args.utf8)), parsed.objectValue != nil
                    else { return call }
                    f["arguments"] = parsed
                    c["function"] = .object(f)
                    return .object(c)
                })
            return .object(o)
        }
    }
}
