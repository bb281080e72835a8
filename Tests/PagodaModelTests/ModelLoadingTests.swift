import Foundation
import PagodaKernels
import PagodaTestSupport
import XCTest

@testable import PagodaModel

/// Loading from the repository's own model (present on every clone) and the clear errors for bad
/// folders: unknown architecture, truncated file, missing tensor, wrong shape, a TP size that does not
/// divide the heads, a bad pipeline partition.
final class ModelLoadingTests: XCTestCase {
    let pool = ThreadPool(threads: 2)

    /// A scratch copy of the repo's tiny-qwen3 folder that a test may damage.
    func scratchModel() throws -> String {
        let dir = NSTemporaryDirectory() + "pagoda-model-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for f in ["config.json", "generation_config.json", "model.safetensors"] {
            try FileManager.default.copyItem(atPath: ConformanceData.repoModelDirectory + "/" + f, toPath: dir + "/" + f)
        }
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func editConfig(_ dir: String, _ edit: (inout [String: Any]) -> Void) throws {
        let url = URL(fileURLWithPath: dir + "/config.json")
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        edit(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: url)
    }

    func assertLoadError(_ dir: String, parallelism: ModelParallelism = .single, contains parts: [String], line: UInt = #line) {
        XCTAssertThrowsError(try CausalLM(directory: dir, parallelism: parallelism, threadPool: pool), line: line) { error in
            let text = "\(error)"
            for p in parts { XCTAssertTrue(text.contains(p), "\"\(text)\" should mention \(p)", line: line) }
        }
    }

    func testRepoModelLoadsAndGeneratesFiniteLogits() throws {
        let model = try CausalLM(directory: ConformanceData.repoModelDirectory, threadPool: pool)
        XCTAssertEqual(model.config.modelType, "qwen3")
        XCTAssertEqual(model.headDim, 32)
        XCTAssertEqual(model.numLayers, 2)
        XCTAssertEqual(model.eosTokenIds, [151645])
        try model.allocateKVCache(numBlocks: 4, blockSize: 16)
        XCTAssertEqual(model.kvCacheBytesPerBlock(blockSize: 16), 2 * 2 * 16 * 2 * 32 * 4)
        let ids = [9707, 11, 1879, 0, 42]
        let ok = try GreedyPagedRunner().run(prompts: [ids], steps: 4, vocabSize: model.vocabSize, forward: model.forwardLogits)
        XCTAssertEqual(ok[0].count, 4)
    }

    func testUnknownArchitectureIsAnError() throws {
        let dir = try scratchModel()
        try editConfig(dir) { $0["model_type"] = "gpt_bigcode" }
        assertLoadError(dir, contains: ["config.json", "unsupported architecture", "gpt_bigcode"])
    }

    func testTruncatedSafetensorsIsAnError() throws {
        let dir = try scratchModel()
        let path = dir + "/model.safetensors"
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: UInt64(size / 2))
        try handle.close()
        assertLoadError(dir, contains: ["model.safetensors", "truncated"])
        // Cut inside the header too.
        let h2 = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try h2.truncate(atOffset: 100)
        try h2.close()
        assertLoadError(dir, contains: ["model.safetensors"])
    }

    func testWrongShapeAndMissingTensorAreErrors() throws {
        let dir = try scratchModel()
        try editConfig(dir) { $0["intermediate_size"] = 128 }
        assertLoadError(dir, contains: ["model.safetensors", "mlp.gate_proj.weight", "shape"])
        let dir2 = try scratchModel()
        try editConfig(dir2) { $0["num_hidden_layers"] = 3 }
        assertLoadError(dir2, contains: ["missing tensor", "model.layers.2."])
    }

    func testTensorParallelSizeMustDivideHeads() throws {
        let group = ThreadCommunicatorGroup(worldSize: 3)
        let par = ModelParallelism(tpRank: 0, tpSize: 3, tpGroup: group.communicator(rank: 0))
        assertLoadError(ConformanceData.repoModelDirectory, parallelism: par, contains: ["tensor_parallel_size 3", "num_attention_heads 4"])
    }

    func testPipelineLayerPartition() throws {
        XCTAssertEqual(try ModelParallelism(ppRank: 0, ppSize: 2).layerRange(numLayers: 5), 0..<3)
        XCTAssertEqual(try ModelParallelism(ppRank: 1, ppSize: 2).layerRange(numLayers: 5), 3..<5)
        XCTAssertEqual(try ModelParallelism(ppRank: 2, ppSize: 4).layerRange(numLayers: 10), 5..<8)
        XCTAssertEqual(try ModelParallelism(ppRank: 0, ppSize: 2, layerPartition: [1, 4]).layerRange(numLayers: 5), 0..<1)
        XCTAssertEqual(try ModelParallelism(ppRank: 1, ppSize: 2, layerPartition: [1, 4]).layerRange(numLayers: 5), 1..<5)
        XCTAssertThrowsError(try ModelParallelism(ppRank: 0, ppSize: 2, layerPartition: [2, 2]).layerRange(numLayers: 5)) {
            XCTAssertTrue("\($0)".contains("must have 2 entries summing to 5 layers"), "\($0)")
        }
    }

    func testConfigParsesTransformers4And5Styles() throws {
        let json = """
            {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
             "vocab_size": 100, "intermediate_size": 128, "eos_token_id": [1, 2],
             "rope_scaling": {"type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "original_max_position_embeddings": 8192}, "rope_theta": 500000.0}
            """
        let c = try JSONDecoder().decode(ModelConfig.self, from: Data(json.utf8))
        try c.validate(path: "config.json")
        XCTAssertEqual(c.resolvedHeadDim, 16)
        XCTAssertEqual(c.resolvedNumKVHeads, 4)
        XCTAssertEqual(c.eosTokenIds, [1, 2])
        XCTAssertEqual(c.resolvedRopeTheta, 500000)
        if case .llama3(let f, _, _, let orig) = try c.ropeScalingKind() {
            XCTAssertEqual(f, 8)
            XCTAssertEqual(orig, 8192)
        } else {
            XCTFail("llama3 scaling expected")
        }
        let bad = try JSONDecoder().decode(
            ModelConfig.self,
            from: Data(#"{"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100, "intermediate_size": 128, "rope_scaling": {"rope_type": "yarn", "factor": 4.0}}"#.utf8))
        XCTAssertThrowsError(try bad.validate(path: "x/config.json")) { XCTAssertTrue("\($0)".contains("yarn")) }
    }

    func testBadBatchIsAnErrorNotACrash() throws {
        let model = try CausalLM(directory: ConformanceData.repoModelDirectory, threadPool: pool)
        let batch = ForwardBatch(
            tokenIds: [1], positions: [0], slotMapping: [0], queryStartLoc: [0, 1], contextLens: [1], blockTables: [[0]],
            logitsIndices: [0])
        XCTAssertThrowsError(try model.forwardLogits(batch))  // no KV cache yet
        try model.allocateKVCache(numBlocks: 2, blockSize: 16)
        var b = batch
        b.blockTables = [[5]]
        XCTAssertThrowsError(try model.forwardLogits(b))
        b = batch
        b.tokenIds = [999_999]
        XCTAssertThrowsError(try model.forwardLogits(b))
        b = batch
        b.positions = [40]
        XCTAssertThrowsError(try model.forwardLogits(b))
        XCTAssertNoThrow(try model.forwardLogits(batch))
    }
}
