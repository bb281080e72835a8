import Foundation
import PagodaStructured
import PagodaTokenizer

/// The one-time costs of a structured-output constraint for `pagoda bench latency --json-schema`:
/// building the vocabulary trie from the tokenizer (once per engine), compiling the schema into a
/// grammar (once per schema, then cached) and computing the first token mask (once per grammar
/// state, then cached).
public struct StructuredCompileBenchmark {
    public struct Result: Codable, Sendable {
        public var vocabularySeconds: Double
        public var compileSeconds: Double
        public var firstMaskSeconds: Double
        public var grammarRules: Int
        public var trieNodes: Int

        public var summary: String {
            String(
                format: "Structured outputs: vocabulary trie %.1f ms (%d nodes), schema compile %.3f ms (%d rules), first mask %.1f ms",
                vocabularySeconds * 1e3, trieNodes, compileSeconds * 1e3, grammarRules, firstMaskSeconds * 1e3)
        }
    }

    public static func run(spec: StructuredOutputSpec, tokenizer: Tokenizer) throws -> Result {
        func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
        let t0 = now()
        let vocab = TokenVocabulary(tokenBytes: tokenizer.tokenByteStrings())
        let t1 = now()
        let grammar = try spec.compileGrammar()
        let t2 = now()
        let matcher = StructuredGrammar(grammar: grammar, vocabulary: vocab).makeMatcher()
        _ = matcher.allows(token: 0)
        let t3 = now()
        return Result(
            vocabularySeconds: t1 - t0, compileSeconds: t2 - t1, firstMaskSeconds: t3 - t2,
            grammarRules: grammar.rules.count, trieNodes: vocab.nodeCount)
    }
}
