import Foundation
import PagodaKernels
import PagodaTestSupport
import XCTest

@testable import PagodaModel

/// The random-model writer produces a folder the loader reads, single-file and sharded (index.json),
/// with identical logits either way; values are seeded.
final class RandomModelTests: XCTestCase {
    let pool = ThreadPool(threads: 2)

    func smallConfig(_ modelType: String) -> [String: Any] {
        var c: [String: Any] = [
            "model_type": modelType, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300, "rms_norm_eps": 1e-6,
            "rope_theta": 10000.0, "tie_word_embeddings": modelType != "mixtral", "eos_token_id": 2,
        ]
        if modelType == "mixtral" {
            c["num_local_experts"] = 4
            c["num_experts_per_tok"] = 2
        }
        return c
    }

    func logits(_ dir: String) throws -> [Float] {
        let model = try CausalLM(directory: dir, threadPool: pool)
        try model.allocateKVCache(numBlocks: 2, blockSize: 16)
        let batch = ForwardBatch(
            tokenIds: [5, 17, 250], positions: [0, 1, 2], slotMapping: [0, 1, 2], queryStartLoc: [0, 3], contextLens: [3],
            blockTables: [[0]], logitsIndices: [2])
        return try model.forwardLogits(batch)
    }

    func testSingleAndShardedRandomModelsLoadAndAgree() throws {
        let base = NSTemporaryDirectory() + "pagoda-random-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: base) }
        for type in ["qwen2", "llama", "mixtral"] {
            try RandomModelWriter.write(config: smallConfig(type), to: base + "/\(type)-single", seed: 7)
            try RandomModelWriter.write(config: smallConfig(type), to: base + "/\(type)-sharded", seed: 7, maxShardBytes: 40_000)
            XCTAssertTrue(FileManager.default.fileExists(atPath: base + "/\(type)-sharded/model.safetensors.index.json"))
            let a = try logits(base + "/\(type)-single"), b = try logits(base + "/\(type)-sharded")
            XCTAssertEqual(a, b, type)
            XCTAssertTrue(a.allSatisfy(\.isFinite), type)
            XCTAssertGreaterThan(a.map(abs).max() ?? 0, 0, type)
        }
        try RandomModelWriter.write(config: smallConfig("qwen2"), to: base + "/other-seed", seed: 8)
        XCTAssertNotEqual(try logits(base + "/qwen2-single"), try logits(base + "/other-seed"))
    }

    func testKnownShapesAreValidConfigs() throws {
        for (name, json) in RandomModelWriter.shapes {
            let data = try JSONSerialization.data(withJSONObject: json)
            let c = try JSONDecoder().decode(ModelConfig.self, from: data)
            XCTAssertNoThrow(try c.validate(path: name))
        }
    }
}
