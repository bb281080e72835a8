/// One tool call in an assistant message (`tool_calls`), or a piece of one in a streamed delta,
/// where `index` says which call the piece belongs to and only the first piece has `id` and name.
public struct ChatToolCall: Sendable, Codable, Equatable {
    public var index: Int?
    public var id: String?
    public var type: String?
    public var function: ChatFunctionCall

    public init(index: Int? = nil, id: String?, type: String? = "function", function: ChatFunctionCall) {
        self.index = index; self.id = id; self.type = type; self.function = function
    }
}

/// The function a tool call names and its arguments as JSON text (OpenAI sends a string).
public struct ChatFunctionCall: Sendable, Codable, Equatable {
    public var name: String?
    public var arguments: String?
    public init(name: String?, arguments: String?) { self.name = name; self.arguments = arguments }
}
