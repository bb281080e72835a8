// The one error type of chat-template parsing and rendering.

/// A chat template could not be parsed or rendered. For `raise_exception(msg)` the description is
/// exactly the template's message (what transformers' TemplateError says); other kinds name the line.
public struct ChatTemplateError: Error, CustomStringConvertible, Equatable {
    public enum Kind: String, Sendable {
        /// The template source is not valid Jinja (the parser's TemplateSyntaxError).
        case syntax
        /// The template called `raise_exception(message)`.
        case raised
        /// An undefined variable was used where jinja2 raises (UndefinedError).
        case undefined
        /// A type error, unsafe access, unsupported feature or bad argument while rendering.
        case runtime
        /// The request cannot be rendered at all (no template, bad template name).
        case missingTemplate
    }

    public let kind: Kind
    public let message: String
    /// 1-based line of the template where the error arose, when known.
    public var line: Int?

    public init(_ kind: Kind, _ message: String, line: Int? = nil) {
        self.kind = kind
        self.message = message
        self.line = line
    }

    public var description: String {
        switch kind {
        case .raised, .missingTemplate: return message
        case .syntax: return "chat template syntax error" + (line.map { " at line \($0)" } ?? "") + ": " + message
        case .undefined, .runtime: return "chat template error" + (line.map { " at line \($0)" } ?? "") + ": " + message
        }
    }
}
