import XCTest

@testable import PagodaBench

/// The datasets under the committed model's real tokenizer (Qwen3 byte-level BPE, 151k ids): random prompts must
/// encode to exactly their drawn lengths.
final class RealTokenizerDatasetTests: XCTestCase {
    static let modelDir = ServeMainTests.repoRoot.appendingPathComponent("models/tiny-qwen3").path

    func testRandomPromptsHaveExactLengths() throws {
        let tok = try BenchTokenizerLoader.load(Self.modelDir)
        XCTAssertEqual(tok.numSpecialTokensToAdd, 0, "Qwen adds no BOS")
        let requests = try RandomDataset(inputLen: 64, outputLen: 8, rangeRatio: 0.5, prefixLen: 16, seed: 9)
            .sample(tokenizer: tok, numRequests: 24)
        for r in requests {
            XCTAssertEqual(tok.encode(r.prompt, addSpecialTokens: true).count, r.promptLen)
            XCTAssertTrue((16 + 32...16 + 96).contains(r.promptLen), "\(r.promptLen)")
        }
        let fixed = try RandomDataset(inputLen: 100, outputLen: 8, seed: 1).sample(tokenizer: tok, numRequests: 10)
        XCTAssertEqual(fixed.map { tok.encode($0.prompt, addSpecialTokens: true).count }, Array(repeating: 100, count: 10))
        XCTAssertFalse(fixed.contains { r in r.prompt.contains("<|im_start|>") || r.prompt.contains("<|endoftext|>") },
            "special tokens are never drawn")
    }
}
