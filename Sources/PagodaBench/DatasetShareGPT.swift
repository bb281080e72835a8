import Foundation

/// `--dataset-name sharegpt`: conversations from a ShareGPT JSON file, read as vLLM's `ShareGPTDataset` reads them.
///
/// The file is a JSON array of entries `{"conversations": [{"from": ..., "value": ...}, ...], ...}`. Entries with
/// fewer than two turns are dropped, the rest shuffled with `--seed`; the first turn is the prompt and the second
/// turn's token count the output length (unless `--sharegpt-output-len` is given). Pairs vLLM would prune
/// (prompt or output under 4 tokens, prompt over 1024, both over 2048) are skipped; when fewer than
/// `--num-prompts` remain, some are repeated (vLLM's oversampling).
public struct ShareGPTDataset {
    public var path: String
    public var outputLen: Int?
    public var seed: UInt64

    public init(path: String, outputLen: Int? = nil, seed: UInt64 = 0) {
        self.path = path
        self.outputLen = outputLen
        self.seed = seed
    }

    /// The (prompt, completion) pairs of the file, in file order.
    public func loadConversations() throws -> [(prompt: String, completion: String)] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DatasetError("--dataset-path \(path): cannot read the file")
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw DatasetError("--dataset-path \(path): not valid JSON (\(error.localizedDescription))")
        }
        guard let entries = json as? [Any] else {
            throw DatasetError("--dataset-path \(path): expected a JSON array of ShareGPT entries")
        }
        var pairs: [(String, String)] = []
        for entry in entries {
            guard let object = entry as? [String: Any], let turns = object["conversations"] as? [Any],
                turns.count >= 2,
                let first = (turns[0] as? [String: Any])?["value"] as? String,
                let second = (turns[1] as? [String: Any])?["value"] as? String
            else { continue }
            pairs.append((first, second))
        }
        return pairs
    }

    public func sample(tokenizer: BenchTokenizer, numRequests: Int, requestIdPrefix: String = "") throws -> [SampleRequest] {
        var pairs = try loadConversations()
        var rng = BenchRandom(seed: seed)
        pairs.shuffle(using: &rng)
        var samples: [SampleRequest] = []
        for (prompt, completion) in pairs {
            if samples.count >= numRequests { break }
            let promptLen = tokenizer.encode(prompt, addSpecialTokens: true).count
            let newOutputLen = outputLen ?? tokenizer.encode(completion, addSpecialTokens: true).count
            guard
                Self.isValidSequence(
                    promptLen: promptLen, outputLen: newOutputLen, skipMinOutputLenCheck: outputLen != nil)
            else { continue }
            samples.append(
                SampleRequest(
                    prompt: prompt, promptLen: promptLen, expectedOutputLen: newOutputLen,
                    requestId: requestIdPrefix + String(samples.count)))
        }
        if samples.isEmpty {
            throw DatasetError(
                "--dataset-path \(path): no usable conversations (need two turns, prompt 4...1024 tokens, "
                    + "prompt + output at most 2048 tokens)")
        }
        let distinct = samples.count
        while samples.count < numRequests {
            var extra = samples[rng.integer(0, distinct - 1)]
            extra.requestId = requestIdPrefix + String(samples.count)
            samples.append(extra)
        }
        return samples
    }

    /// vLLM's pruning rule for dataset pairs (`is_valid_sequence`).
    public static func isValidSequence(
        promptLen: Int, outputLen: Int, minLen: Int = 4, maxPromptLen: Int = 1024, maxTotalLen: Int = 2048,
        skipMinOutputLenCheck: Bool = false
    ) -> Bool {
        if promptLen < minLen { return false }
        if !skipMinOutputLenCheck && outputLen < minLen { return false }
        if promptLen > maxPromptLen { return false }
        if promptLen + outputLen > maxTotalLen { return false }
        return true
    }
}
