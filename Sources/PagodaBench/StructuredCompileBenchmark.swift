import Foundation
import PagodaStructured
import PagodaTokenizer

/// The costs of a structured-output constraint for `pagoda bench latency --json-schema`: building the
/// vocabulary trie from the tokenizer (once per engine), compiling the schema into a grammar (once per
/// schema, then cached), computing the first token mask, and the masking itself without a model:
/// `batchSize` documents decoded over random logits for `steps` steps (a finished document is replaced
/// by a new one), timing only the mask work of each step (mask lookup or computation, applying it to
/// the logits row, advancing the matcher).
public struct StructuredCompileBenchmark {
    public struct Result: Codable, Sendable {
        public var vocabularySeconds: Double
        public var compileSeconds: Double
        public var firstMaskSeconds: Double
        public var grammarRules: Int
        public var trieNodes: Int
        /// Mask work per decode step over the whole batch: the first step, and the median of the others.
        public var firstStepMaskSeconds: Double
        public var medianStepMaskSeconds: Double
        /// State masks computed (cache misses), contexts computed (trie walks), dependent tokens checked.
        public var masksComputed: Int
        public var contextsComputed: Int
        public var dependentChecks: Int
        /// Time of all state-mask computations, and of the context walks among them.
        public var maskSeconds: Double
        public var contextSeconds: Double

        public var summary: String {
            String(
                format: "Structured outputs: vocabulary trie %.1f ms (%d nodes), schema compile %.3f ms (%d rules), first mask %.1f ms\n"
                    + "Mask work per step (no model): first step %.2f ms, median %.3f ms; %d state masks (%.1f ms), %d contexts (%.1f ms), %d dependent checks",
                vocabularySeconds * 1e3, trieNodes, compileSeconds * 1e3, grammarRules, firstMaskSeconds * 1e3,
                firstStepMaskSeconds * 1e3, medianStepMaskSeconds * 1e3, masksComputed, maskSeconds * 1e3, contextsComputed,
                contextSeconds * 1e3, dependentChecks)
        }
    }

    public static func run(
        spec: StructuredOutputSpec, tokenizer: Tokenizer, batchSize: Int = 1, steps: Int = 0,
        eosTokenIds: [Int] = [], seed: UInt64 = 1
    ) throws -> Result {
        func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
        let t0 = now()
        let vocab = TokenVocabulary(tokenBytes: tokenizer.tokenByteStrings())
        let t1 = now()
        let grammar = try spec.compileGrammar()
        let t2 = now()
        let structured = StructuredGrammar(grammar: grammar, vocabulary: vocab)
        _ = structured.makeMatcher().allows(token: 0)
        let t3 = now()
        var stepTimes: [Double] = []
        if steps > 0 && batchSize > 0 {
            func fresh() -> GrammarMatcher {
                let m = structured.makeMatcher()
                m.terminators = eosTokenIds
                return m
            }
            var matchers = (0..<batchSize).map { _ in fresh() }
            let row = UnsafeMutablePointer<Float>.allocate(capacity: vocab.count)
            defer { row.deallocate() }
            var rng = seed | 1
            for _ in 0..<steps {
                var spent = 0.0
                for i in matchers.indices {
                    for t in 0..<vocab.count {  // the "model": random logits, not timed
                        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17
                        row[t] = Float(rng >> 40) / Float(1 << 24)
                    }
                    let a = now()
                    matchers[i].applyMask(row, count: vocab.count)
                    spent += now() - a
                    var best = 0
                    for t in 1..<vocab.count where row[t] > row[best] { best = t }
                    let b = now()
                    let ended = eosTokenIds.contains(best) || !matchers[i].advance(token: best)
                    spent += now() - b
                    if ended || row[best] == -.infinity { matchers[i] = fresh() }
                }
                stepTimes.append(spent)
            }
        }
        let rest = stepTimes.dropFirst().sorted()
        return Result(
            vocabularySeconds: t1 - t0, compileSeconds: t2 - t1, firstMaskSeconds: t3 - t2,
            grammarRules: grammar.rules.count, trieNodes: vocab.nodeCount,
            firstStepMaskSeconds: stepTimes.first ?? 0, medianStepMaskSeconds: rest.isEmpty ? 0 : rest[rest.count / 2],
            masksComputed: structured.masksComputed, contextsComputed: structured.contextsComputed,
            dependentChecks: structured.dependentChecks, maskSeconds: structured.maskSeconds,
            contextSeconds: structured.contextSeconds)
    }
}
