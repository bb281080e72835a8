/// Prompt logprobs of one request as they arrive from the workers, a prefill chunk at a time, until
/// they travel with the request's first output (vLLM sends them with the first output too).
extension Request {
    /// Stores a chunk of prompt logprobs. A chunk that starts at or before what is held replaces the
    /// rest (a preempted request recomputes its prompt); nothing is kept once outputs have gone out.
    func record(_ chunk: PromptLogprobsChunk) {
        guard sampling.promptLogprobs != nil, numOutputTokensReported == 0 else { return }
        let i = chunk.firstTokenIndex - 1
        guard i >= 0, i <= promptLogprobs.count else { return }
        promptLogprobs.removeSubrange(i...)
        promptLogprobs.append(contentsOf: chunk.entries)
    }

    /// The prompt logprobs for the first output: nil unless asked for.
    func takePromptLogprobs() -> [TokenLogprob]? {
        guard sampling.promptLogprobs != nil else { return nil }
        defer { promptLogprobs = [] }
        return promptLogprobs
    }
}
