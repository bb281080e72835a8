import Foundation
import PagodaModel
import XCTest

@testable import PagodaEngine

/// A Mistral-style window shorter than the model's positions loads when `--max-model-len` keeps every
/// request inside the window (full attention is then exact) — in the engine process and in TP workers —
/// and is a load error naming `sliding_window` when the context could outgrow it.
final class SlidingWindowContextTests: XCTestCase {
    func testMaxModelLenReachesTheWindowCheck() throws {
        let dir = NSTemporaryDirectory() + "pagoda-window-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        let config: [String: Any] = [
            "model_type": "mistral", "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 64, "rms_norm_eps": 1e-6,
            "rope_theta": 10000.0, "max_position_embeddings": 8192, "hidden_act": "silu", "eos_token_id": 2,
        ]
        try RandomModelWriter.write(config: config, to: dir, seed: 5)
        // The writer validates against max_position_embeddings: add the window afterwards.
        var windowed = config
        windowed["sliding_window"] = 128
        try JSONSerialization.data(withJSONObject: windowed).write(to: URL(fileURLWithPath: dir + "/config.json"))
        func engineConfig(maxModelLen: Int?, tp: Int) -> EngineConfig {
            EngineConfig(model: ModelLoadConfig(path: dir, dtype: .float32, maxModelLen: maxModelLen, threads: 1),
                         cache: CacheConfig(numBlocksOverride: 600),
                         parallel: ParallelConfig(tensorParallelSize: tp, communicatorTimeoutSeconds: 30))
        }
        for tp in [1, 2] {
            XCTAssertThrowsError(try EngineCore(config: engineConfig(maxModelLen: nil, tp: tp))) { error in
                XCTAssertTrue("\(error)".contains("sliding_window = 128"), "tp \(tp): \(error)")
            }
            XCTAssertThrowsError(try EngineCore(config: engineConfig(maxModelLen: 129, tp: tp))) { error in
                XCTAssertTrue("\(error)".contains("sliding_window = 128"), "tp \(tp): \(error)")
            }
            let core = try EngineCore(config: engineConfig(maxModelLen: 128, tp: tp))
            XCTAssertEqual(core.maxModelLen, 128)
            core.shutdown()
        }
    }
}
