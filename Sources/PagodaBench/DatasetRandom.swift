/// `--dataset-name random`: synthetic prompts of exact token lengths (vLLM's `RandomDataset`).
///
/// Input and output lengths are drawn per request from the integer ranges
/// [floor(len·(1−r)), ceil(len·(1+r))] for `--random-range-ratio` r; every prompt starts with one shared random
/// prefix of `--random-prefix-len` tokens, followed by a run of consecutive allowed ids starting at a random
/// offset, adjusted so the text encodes to exactly the drawn length. `promptLen` counts the special tokens the
/// server adds (a BOS), so it equals the server's `prompt_tokens` for the completions API.
public struct RandomDataset {
    public var inputLen = 1024
    public var outputLen = 128
    public var rangeRatio = 0.0
    public var prefixLen = 0
    public var seed: UInt64 = 0

    public init(inputLen: Int = 1024, outputLen: Int = 128, rangeRatio: Double = 0, prefixLen: Int = 0, seed: UInt64 = 0) {
        self.inputLen = inputLen
        self.outputLen = outputLen
        self.rangeRatio = rangeRatio
        self.prefixLen = prefixLen
        self.seed = seed
    }

    public func sample(tokenizer: BenchTokenizer, numRequests: Int, requestIdPrefix: String = "") throws -> [SampleRequest] {
        guard rangeRatio >= 0, rangeRatio < 1 else {
            throw DatasetError("--random-range-ratio must be in [0, 1), got \(rangeRatio)")
        }
        guard inputLen >= 0, outputLen >= 0, prefixLen >= 0 else {
            throw DatasetError("--random-input-len, --random-output-len and --random-prefix-len must not be negative")
        }
        let numSpecial = tokenizer.numSpecialTokensToAdd
        let realInputLen = max(0, inputLen - numSpecial)
        let inputLow = Int((Double(realInputLen) * (1 - rangeRatio)).rounded(.down))
        let inputHigh = Int((Double(realInputLen) * (1 + rangeRatio)).rounded(.up))
        let outputLow = max(1, Int((Double(outputLen) * (1 - rangeRatio)).rounded(.down)))
        let outputHigh = max(1, Int((Double(outputLen) * (1 + rangeRatio)).rounded(.up)))
        if prefixLen + inputLow < 1 {
            throw DatasetError(
                "--random-input-len is too small: with \(numSpecial) special tokens and --random-range-ratio \(rangeRatio) "
                    + "a prompt could have no tokens; increase --random-input-len or --random-prefix-len")
        }
        let allowed = tokenizer.allowedRandomTokenIds()
        guard !allowed.isEmpty else { throw DatasetError("the tokenizer has no non-special tokens") }

        var rng = BenchRandom(seed: seed)
        let inputLens = (0..<numRequests).map { _ in rng.integer(inputLow, inputHigh) }
        let outputLens = (0..<numRequests).map { _ in rng.integer(outputLow, outputHigh) }
        let offsets = (0..<numRequests).map { _ in rng.integer(0, allowed.count - 1) }
        let prefix = (0..<prefixLen).map { _ in allowed[rng.integer(0, allowed.count - 1)] }

        var requests: [SampleRequest] = []
        requests.reserveCapacity(numRequests)
        for i in 0..<numRequests {
            let inner = (0..<inputLens[i]).map { allowed[(offsets[i] + i + $0) % allowed.count] }
            let target = prefixLen + inputLens[i]
            let (prompt, ids) = try PromptLength.decodeToTargetLength(
                tokenizer: tokenizer, tokens: prefix + inner, target: target, allowed: allowed, rng: &rng)
            requests.append(
                SampleRequest(
                    prompt: prompt, promptLen: ids.count + numSpecial, expectedOutputLen: outputLens[i],
                    requestId: requestIdPrefix + String(i)))
        }
        return requests
    }
}
