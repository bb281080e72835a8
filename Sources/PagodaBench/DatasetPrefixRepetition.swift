/// `--dataset-name prefix_repetition`: `--prefix-repetition-num-prefixes` shared random prefixes, each followed by
/// `num_prompts / num_prefixes` distinct random suffixes, shuffled (vLLM's `PrefixRepetitionRandomDataset`). It
/// measures prefix caching. Prefix and suffix are each built to exactly their token counts; `promptLen` is the
/// count of the joined text as the server encodes it (a merge across the seam can change it by a token).
public struct PrefixRepetitionDataset {
    public var prefixLen = 256
    public var suffixLen = 256
    public var numPrefixes = 10
    public var outputLen = 128
    public var seed: UInt64 = 0

    public init(prefixLen: Int = 256, suffixLen: Int = 256, numPrefixes: Int = 10, outputLen: Int = 128, seed: UInt64 = 0) {
        self.prefixLen = prefixLen
        self.suffixLen = suffixLen
        self.numPrefixes = numPrefixes
        self.outputLen = outputLen
        self.seed = seed
    }

    public func sample(tokenizer: BenchTokenizer, numRequests: Int, requestIdPrefix: String = "") throws -> [SampleRequest] {
        guard numPrefixes > 0 else { throw DatasetError("--prefix-repetition-num-prefixes must be positive") }
        guard prefixLen >= 0, suffixLen >= 0, prefixLen + suffixLen > 0 else {
            throw DatasetError("--prefix-repetition-prefix-len and --prefix-repetition-suffix-len must give a non-empty prompt")
        }
        let promptsPerPrefix = numRequests / numPrefixes
        guard promptsPerPrefix > 0 else {
            throw DatasetError(
                "--num-prompts (\(numRequests)) must be at least --prefix-repetition-num-prefixes (\(numPrefixes))")
        }
        let allowed = tokenizer.allowedRandomTokenIds()
        guard !allowed.isEmpty else { throw DatasetError("the tokenizer has no non-special tokens") }
        var rng = BenchRandom(seed: seed)

        func exactTokens(_ count: Int) throws -> [Int] {
            let start = (0..<count).map { _ in allowed[rng.integer(0, allowed.count - 1)] }
            return try PromptLength.decodeToTargetLength(
                tokenizer: tokenizer, tokens: start, target: count, allowed: allowed, rng: &rng
            ).ids
        }

        var requests: [SampleRequest] = []
        for _ in 0..<numPrefixes {
            let prefix = try exactTokens(prefixLen)
            for _ in 0..<promptsPerPrefix {
                let suffix = try exactTokens(suffixLen)
                let prompt = tokenizer.decode(prefix + suffix, skipSpecialTokens: false)
                let promptLen = tokenizer.encode(prompt, addSpecialTokens: true).count
                requests.append(SampleRequest(prompt: prompt, promptLen: promptLen, expectedOutputLen: outputLen))
            }
        }
        requests.shuffle(using: &rng)
        for i in requests.indices { requests[i].requestId = requestIdPrefix + String(i) }
        return requests
    }
}
