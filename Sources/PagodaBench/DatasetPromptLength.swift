/// Turning a token sequence into a prompt whose encoding has exactly a target number of tokens.
///
/// Decoding N arbitrary ids and encoding the text again rarely gives the same N ids (`[calls][here]` may come back
/// as `[call][sh][ere]`). As vLLM's `gen_prompt_decode_to_target_len` does: decode, re-encode, truncate when too
/// long or extend with random allowed ids when too short, and repeat until the text encodes to exactly the target.
/// Pagoda keeps trying past vLLM's 10 rounds and fails loudly rather than returning a prompt of the wrong length.
public enum PromptLength {
    /// Returns the prompt text and its ids (encoded without special tokens); `ids.count == target` always.
    public static func decodeToTargetLength(
        tokenizer: BenchTokenizer, tokens: [Int], target: Int, allowed: [Int], rng: inout BenchRandom,
        maxRounds: Int = 64
    ) throws -> (prompt: String, ids: [Int]) {
        precondition(!allowed.isEmpty)
        if target == 0 { return ("", []) }
        var sequence = tokens
        for _ in 0..<maxRounds {
            let prompt = tokenizer.decode(sequence, skipSpecialTokens: false)
            let ids = tokenizer.encode(prompt, addSpecialTokens: false)
            if ids.count == target { return (prompt, ids) }
            if ids.count > target {
                sequence = Array(ids.prefix(target))
            } else {
                sequence = ids
                for _ in 0..<(target - ids.count) {
                    sequence.append(allowed[rng.integer(0, allowed.count - 1)])
                }
            }
        }
        throw DatasetError("could not build a prompt of exactly \(target) tokens after \(maxRounds) rounds")
    }
}
