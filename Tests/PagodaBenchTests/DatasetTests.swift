import Foundation
import XCTest

@testable import PagodaBench

final class DatasetTests: XCTestCase {
    func testPromptLengthIsExactDespiteMerges() throws {
        let tok = ToyTokenizer()
        let allowed = tok.allowedRandomTokenIds()
        var rng = BenchRandom(seed: 7)
        var changed = 0
        for target in 1...60 {
            let start = (0..<target).map { _ in allowed[rng.integer(0, allowed.count - 1)] }
            if tok.encode(tok.decode(start, skipSpecialTokens: false), addSpecialTokens: false).count != target {
                changed += 1
            }
            let (prompt, ids) = try PromptLength.decodeToTargetLength(
                tokenizer: tok, tokens: start, target: target, allowed: allowed, rng: &rng)
            XCTAssertEqual(ids.count, target)
            XCTAssertEqual(tok.encode(prompt, addSpecialTokens: false), ids)
        }
        XCTAssertGreaterThan(changed, 10, "the toy tokenizer should merge tokens, or this test proves nothing")
    }

    func testRandomDatasetHasExactLengthsCountingBOS() throws {
        let tok = ToyTokenizer()
        let requests = try RandomDataset(inputLen: 40, outputLen: 7, seed: 3).sample(tokenizer: tok, numRequests: 20)
        XCTAssertEqual(requests.count, 20)
        for r in requests {
            XCTAssertEqual(r.promptLen, 40)
            XCTAssertEqual(tok.encode(r.prompt, addSpecialTokens: true).count, 40)
            XCTAssertEqual(r.expectedOutputLen, 7)
        }
        XCTAssertEqual(requests.map(\.requestId).prefix(2), ["0", "1"])
        XCTAssertGreaterThan(Set(requests.map(\.prompt)).count, 10, "prompts should differ")
        let again = try RandomDataset(inputLen: 40, outputLen: 7, seed: 3).sample(tokenizer: tok, numRequests: 20)
        XCTAssertEqual(again, requests, "same seed, same prompts")
        let other = try RandomDataset(inputLen: 40, outputLen: 7, seed: 4).sample(tokenizer: tok, numRequests: 20)
        XCTAssertNotEqual(other.map(\.prompt), requests.map(\.prompt))
    }

    func testRandomDatasetRangeRatioAndPrefix() throws {
        let tok = ToyTokenizer(addsBOS: false)
        let requests = try RandomDataset(inputLen: 20, outputLen: 10, rangeRatio: 0.5, prefixLen: 5, seed: 1)
            .sample(tokenizer: tok, numRequests: 50)
        for r in requests {
            XCTAssertTrue((5 + 10...5 + 30).contains(r.promptLen), "\(r.promptLen)")
            XCTAssertEqual(tok.encode(r.prompt, addSpecialTokens: false).count, r.promptLen)
            XCTAssertTrue((5...15).contains(r.expectedOutputLen))
        }
        XCTAssertGreaterThan(Set(requests.map(\.promptLen)).count, 3)
        XCTAssertThrowsError(try RandomDataset(rangeRatio: 1.0).sample(tokenizer: tok, numRequests: 1))
        XCTAssertThrowsError(try RandomDataset(inputLen: 1, prefixLen: 0).sample(tokenizer: ToyTokenizer(), numRequests: 1))
    }

    func testShareGPTReadsFiltersAndOversamples() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("sg.json")
        let entries: [[String: Any]] = [
            ["id": "1", "conversations": [["from": "human", "value": "abcabcabc"], ["from": "gpt", "value": "dededede"]]],
            ["id": "2", "conversations": [["from": "human", "value": "only one turn"]]],
            ["id": "3", "conversations": [["from": "human", "value": "ab"], ["from": "gpt", "value": "dededede"]]],  // prompt too short
            ["id": "4", "conversations": [["from": "human", "value": "cc cc cc cc"], ["from": "gpt", "value": "e e e e e"]]],
            ["id": "5"],
        ]
        try JSONSerialization.data(withJSONObject: entries).write(to: file)
        let tok = ToyTokenizer()
        let dataset = ShareGPTDataset(path: file.path, seed: 0)
        XCTAssertEqual(try dataset.loadConversations().count, 3)
        let samples = try dataset.sample(tokenizer: tok, numRequests: 5)
        XCTAssertEqual(samples.count, 5, "two usable pairs, oversampled to five")
        XCTAssertEqual(Set(samples.map(\.prompt)), ["abcabcabc", "cc cc cc cc"])
        for s in samples {
            XCTAssertEqual(s.promptLen, tok.encode(s.prompt, addSpecialTokens: true).count)
        }
        let fixed = try ShareGPTDataset(path: file.path, outputLen: 2).sample(tokenizer: tok, numRequests: 2)
        XCTAssertEqual(fixed.map(\.expectedOutputLen), [2, 2])
        XCTAssertThrowsError(try ShareGPTDataset(path: dir.appendingPathComponent("missing.json").path)
            .sample(tokenizer: tok, numRequests: 1)) { error in
            XCTAssertTrue("\(error)".contains("missing.json"))
        }
        try Data("{not json".utf8).write(to: file)
        XCTAssertThrowsError(try ShareGPTDataset(path: file.path).sample(tokenizer: tok, numRequests: 1))
    }

    func testPrefixRepetitionSharesPrefixes() throws {
        let tok = ToyTokenizer(addsBOS: false)
        let requests = try PrefixRepetitionDataset(prefixLen: 12, suffixLen: 6, numPrefixes: 3, outputLen: 4, seed: 2)
            .sample(tokenizer: tok, numRequests: 10)
        XCTAssertEqual(requests.count, 9, "10 / 3 prompts per prefix, as vLLM")
        let prefixes = Set(requests.map { tok.decode(Array(tok.encode($0.prompt, addSpecialTokens: false).prefix(8)), skipSpecialTokens: false) })
        XCTAssertLessThanOrEqual(prefixes.count, 3)
        for r in requests {
            XCTAssertEqual(r.expectedOutputLen, 4)
            XCTAssertTrue((16...18).contains(r.promptLen), "\(r.promptLen)")
        }
        XCTAssertThrowsError(try PrefixRepetitionDataset(numPrefixes: 5).sample(tokenizer: tok, numRequests: 4))
    }
}
