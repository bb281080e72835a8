/// A step the model runner cannot apply: the scheduler's message does not fit the request states this
/// worker holds (a protocol mismatch between engine core and worker). Reported to the engine, which fails
/// the step naming the worker; it never stops the worker's process by itself.
public enum ModelRunnerError: Error, CustomStringConvertible, Equatable {
    /// A diff or a scheduled token count for a request this worker was never sent (or already freed).
    case unknownRequest(String)
    /// The step's fields disagree with each other or with the request's tokens and blocks.
    case inconsistentStep(String)

    public var description: String {
        switch self {
        case .unknownRequest(let id): return "the scheduler sent a diff for request \(id), which this worker does not know"
        case .inconsistentStep(let why): return "inconsistent scheduler output: \(why)"
        }
    }
}
