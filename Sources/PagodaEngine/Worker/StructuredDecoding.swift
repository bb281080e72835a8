import Foundation
import PagodaStructured
import PagodaTokenizer

/// The model runner's side of structured outputs: the vocabulary as byte strings (from the model's
/// tokenizer, loaded on the first constrained request) and the cache of compiled constraints with
/// their token masks (`StructuredOutputCache`).
final class StructuredDecoding {
    let tokenizerPath: String?
    private var cache: StructuredOutputCache?

    init(tokenizerPath: String?) { self.tokenizerPath = tokenizerPath }

    /// A matcher for `spec`, advanced over the tokens the request already generated (a request
    /// rebuilt after preemption continues where it was).
    func matcher(_ spec: StructuredOutputSpec, replaying state: CachedRequestState) throws -> GrammarMatcher {
        let m = try grammar(spec).makeMatcher()
        // EOS ends a complete document even with ignore_eos (the grammar allows nothing else there).
        m.terminators = state.eosTokenIds + state.sampling.stopTokenIds
        for t in state.outputTokenIds { m.advance(token: t, isTerminator: state.isTerminator(t)) }
        return m
    }

    func grammar(_ spec: StructuredOutputSpec) throws -> StructuredGrammar {
        if cache == nil {
            guard let path = tokenizerPath else {
                throw ModelRunnerError.inconsistentStep("structured outputs need the model's tokenizer, and this runner has none")
            }
            let tokenizer = try ModelTokenizer.load(path)
            cache = StructuredOutputCache(vocabulary: TokenVocabulary(tokenBytes: tokenizer.tokenByteStrings()))
        }
        return try cache!.grammar(for: spec)
    }
}
