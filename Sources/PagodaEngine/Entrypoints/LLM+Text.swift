import Foundation
import PagodaTokenizer

extension LLM {
    /// Loads the tokenizer of the model folder (tokenizer.json, tokenizer_config.json).
    public func loadTokenizer() throws -> Tokenizer { try ModelTokenizer.load(engine.config.model.path) }

    /// Tokenizes each prompt (with the tokenizer's special tokens, e.g. BOS), generates for all at once,
    /// and decodes the outputs (special tokens skipped, as vLLM's default).
    public func generate(prompts: [String], sampling: SamplingParams, tokenizer: Tokenizer) throws -> [RequestResult] {
        let ids = prompts.map { tokenizer.encode($0, addSpecialTokens: true) }
        var results = try generate(promptTokenIds: ids, sampling: sampling, tokenizer: tokenizer)
        for i in results.indices { results[i].prompt = prompts[i] }
        return results
    }

    /// Generates from token ids and decodes the outputs with `tokenizer`; its EOS id also ends requests.
    public func generate(promptTokenIds: [[Int]], sampling: SamplingParams, tokenizer: Tokenizer) throws -> [RequestResult] {
        var results = try generate(promptTokenIds: promptTokenIds, sampling: Array(repeating: sampling, count: promptTokenIds.count),
                                   extraEOS: tokenizer.eosTokenId.map { [$0] } ?? [])
        for i in results.indices { results[i].text = tokenizer.decode(results[i].tokenIds, skipSpecialTokens: true) }
        return results
    }
}
