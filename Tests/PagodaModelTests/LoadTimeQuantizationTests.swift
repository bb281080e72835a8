import Foundation
import PagodaKernels
import XCTest

@testable import PagodaModel

/// `--quantization q8_0|q4_0`: the linear layers of a float model become ggml blocks at load (embeddings, LM
/// head and norms keep their precision) and the logits stay close to the float model's.
final class LoadTimeQuantizationTests: XCTestCase {
    let pool = ThreadPool(threads: 1)

    func model(_ dir: String, _ q: WeightDType?) throws -> (CausalLM, [Float]) {
        let lm = try CausalLM(directory: dir, threadPool: pool, quantization: q)
        try lm.allocateKVCache(numBlocks: 2, blockSize: 16)
        let batch = ForwardBatch(
            tokenIds: [5, 17, 250, 3], positions: [0, 1, 2, 3], slotMapping: [0, 1, 2, 3], queryStartLoc: [0, 4],
            contextLens: [4], blockTables: [[0]], logitsIndices: [3])
        return (lm, try lm.forwardLogits(batch))
    }

    func testLinearLayersAreQuantizedAndLogitsStayClose() throws {
        let dir = NSTemporaryDirectory() + "pagoda-quant-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        let c: [String: Any] = [
            "model_type": "qwen3", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "head_dim": 32,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300, "rms_norm_eps": 1e-6,
            "rope_theta": 10000.0, "tie_word_embeddings": true, "eos_token_id": 2,
        ]
        try RandomModelWriter.write(config: c, to: dir, seed: 3)
        let (_, float) = try model(dir, nil)
        let scale = float.map(abs).max() ?? 1
        for (type, bound) in [(WeightDType.q8_0, 0.02), (.q4_0, 0.2)] {
            let (lm, got) = try model(dir, type)
            for l in lm.layers {
                XCTAssertEqual([l.qProj, l.kProj, l.vProj, l.oProj].map(\.dtype), Array(repeating: type, count: 4))
            }
            XCTAssertFalse(lm.lmHead!.dtype.isQuantized, "the LM head keeps its precision")
            let worst = zip(got, float).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(Double(worst / scale), bound, "\(type): max logit error \(worst) of \(scale)")
            XCTAssertGreaterThan(worst, 0, "\(type): the weights were not quantized")
        }
    }
}
