/// One request of a benchmark dataset (vLLM's `SampleRequest`): the prompt text, its length in tokens under the
/// target tokenizer as the server will count it, and the number of tokens to ask for.
public struct SampleRequest: Sendable, Equatable {
    public var prompt: String
    public var promptLen: Int
    public var expectedOutputLen: Int
    public var requestId: String

    public init(prompt: String, promptLen: Int, expectedOutputLen: Int, requestId: String = "") {
        self.prompt = prompt
        self.promptLen = promptLen
        self.expectedOutputLen = expectedOutputLen
        self.requestId = requestId
    }
}

/// A dataset problem, named after the flag or file at fault.
public struct DatasetError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The datasets `--dataset-name` chooses from.
public enum DatasetName: String, CaseIterable, Sendable {
    case random
    case sharegpt
    case prefixRepetition = "prefix_repetition"

    /// Accepts vLLM's names; `prefix-repetition` is taken as `prefix_repetition`.
    public init?(flag: String) {
        if flag == "prefix-repetition" { self = .prefixRepetition; return }
        self.init(rawValue: flag)
    }
}
