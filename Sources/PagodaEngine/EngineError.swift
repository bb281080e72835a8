/// Errors of the engine, each naming the parameter or the problem in one line.
public enum EngineError: Error, CustomStringConvertible, Equatable {
    /// A request parameter is out of range (OpenAI: 400).
    case invalidRequest(parameter: String, reason: String)
    /// The prompt does not fit the model's context (OpenAI: 400).
    case promptTooLong(numTokens: Int, maxModelLen: Int)
    case duplicateRequestId(String)
    case insufficientMemory(String)
    case unsupported(String)
    /// The engine has shut down or failed.
    case engineDead(String)

    public var description: String {
        switch self {
        case .invalidRequest(let p, let r): return "invalid \(p): \(r)"
        case .promptTooLong(let n, let m):
            return "the prompt (\(n) tokens) is longer than the maximum model length of \(m) tokens"
        case .duplicateRequestId(let id): return "request id \(id) is already in use"
        case .insufficientMemory(let s): return s
        case .unsupported(let s): return s
        case .engineDead(let s): return "engine is not running: \(s)"
        }
    }
}
