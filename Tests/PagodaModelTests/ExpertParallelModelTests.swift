import Foundation
import PagodaDistributed
import PagodaKernels
import XCTest

@testable import PagodaModel

/// Expert parallelism in the model: two EP ranks (threads joined by a shared-memory group), each holding
/// half of the experts, give the logits of the whole model for their own batches; a rank with no tokens
/// (its idle step) still serves the other's tokens; the counters add up.
final class ExpertParallelModelTests: XCTestCase {
    let pool = ThreadPool(threads: 1)
    static var counter = 0

    /// A small qwen3_moe (8 experts, top 2) with random weights.
    func randomMoE(headDim: Int = 32, seed: UInt64 = 11) throws -> String {
        let dir = NSTemporaryDirectory() + "pagoda-ep-model-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        let c: [String: Any] = [
            "model_type": "qwen3_moe", "hidden_size": 64, "intermediate_size": 128, "moe_intermediate_size": 48,
            "num_experts": 8, "num_experts_per_tok": 2, "norm_topk_prob": true, "decoder_sparse_step": 1,
            "num_hidden_layers": 2, "head_dim": headDim, "num_attention_heads": 4, "num_key_value_heads": 2,
            "vocab_size": 300, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": true, "eos_token_id": 2,
            "max_position_embeddings": 2048,
        ]
        try RandomModelWriter.write(config: c, to: dir, seed: seed, weightStd: 0.2)
        return dir
    }

    static let batchA = ForwardBatch(
        tokenIds: [5, 17, 250, 3, 9], positions: [0, 1, 2, 3, 4], slotMapping: [0, 1, 2, 3, 4], queryStartLoc: [0, 5],
        contextLens: [5], blockTables: [[0]], logitsIndices: [2, 4])
    static let batchB = ForwardBatch(
        tokenIds: [42, 7, 99], positions: [0, 1, 2], slotMapping: [0, 1, 2], queryStartLoc: [0, 3], contextLens: [3],
        blockTables: [[0]], logitsIndices: [2])

    func reference(_ dir: String, _ batch: ForwardBatch) throws -> [Float] {
        let lm = try CausalLM(directory: dir, threadPool: pool)
        try lm.allocateKVCache(numBlocks: 2, blockSize: 16)
        return try lm.forwardLogits(batch)
    }

    /// Runs `body(rank, model)` for two EP ranks on two threads.
    func onTwoRanks<T>(_ dir: String, reportInterval: Int = 1, _ body: @escaping (Int, CausalLM) throws -> T) throws -> [T] {
        Self.counter += 1
        let name = "/pagoda-ep-model-\(getpid())-\(Self.counter)"
        let box = RankResults<T>(count: 2)
        let lock = NSLock()
        let group = DispatchGroup()
        for r in 0..<2 {
            group.enter()
            Thread {
                let res = Result { () throws -> T in
                    let shm = try SharedMemoryCommunicator(
                        name: name, rank: r, worldSize: 2, slotBytes: 64 << 10, mailboxBytes: 32 << 10, timeout: 60, spinCount: 100)
                    let lm = try CausalLM(
                        directory: dir, parallelism: ModelParallelism(expertGroup: shm, expertLoadReportInterval: reportInterval),
                        threadPool: ThreadPool(threads: 1))
                    try lm.allocateKVCache(numBlocks: 2, blockSize: 16)
                    return try body(r, lm)
                }
                lock.lock(); box.results[r] = res; lock.unlock()
                group.leave()
            }.start()
        }
        XCTAssertEqual(group.wait(timeout: .now() + 120), .success)
        return try box.results.map { try XCTUnwrap($0).get() }
    }

    func assertClose(_ a: [Float], _ b: [Float], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThan(worst, 1e-4, file: file, line: line)
    }

    func testTwoRanksGiveTheWholeModelsLogits() throws {
        let dir = try randomMoE()
        let (refA, refB) = (try reference(dir, Self.batchA), try reference(dir, Self.batchB))
        let results = try onTwoRanks(dir) { r, lm -> ([Float], Range<Int>, Int, ExpertParallelStats?) in
            let moe = try XCTUnwrap(
                lm.layers.compactMap { l -> SparseMoeBlock? in if case .experts(let m) = l.feedForward { return m } else { return nil } }
                    .first)
            let logits = try lm.forwardLogits(r == 0 ? Self.batchA : Self.batchB)
            return (logits, moe.localExperts, moe.gate.count, lm.expertParallelStats)
        }
        assertClose(results[0].0, refA)
        assertClose(results[1].0, refB)
        // Each rank loaded only its half of the experts.
        XCTAssertEqual(results[0].1, 0..<4)
        XCTAssertEqual(results[1].1, 4..<8)
        XCTAssertEqual(results[0].2, 4)
        // Every (token, expert) pair of both batches was counted once, in every layer: (5 + 3) tokens × top 2 × 2 layers.
        let stats = try XCTUnwrap(results[0].3)
        XCTAssertEqual(stats.tokensPerExpert.reduce(0, +), 8 * 2 * 2)
        XCTAssertEqual(stats.windowTokensPerRank.reduce(0, +), 8 * 2 * 2)
        XCTAssertEqual(stats.steps, 1)
        XCTAssertEqual(try XCTUnwrap(results[1].3).tokensPerExpert, stats.tokensPerExpert, "the report is group-wide")
        XCTAssertGreaterThan(stats.allToAllSeconds, 0)
    }

    func testIdleRankServesTheOthersTokens() throws {
        let dir = try randomMoE()
        let refA = try reference(dir, Self.batchA)
        let results = try onTwoRanks(dir) { r, lm -> [Float] in
            if r == 0 { return try lm.forwardLogits(Self.batchA) }
            try lm.expertParallelIdleStep()
            return []
        }
        assertClose(results[0], refA)
    }

    func testDenseModelIsRefused() throws {
        let dir = NSTemporaryDirectory() + "pagoda-ep-dense-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        try RandomModelWriter.write(
            config: [
                "model_type": "qwen3", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "head_dim": 32,
                "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300, "rms_norm_eps": 1e-6,
                "rope_theta": 10000.0, "tie_word_embeddings": true, "eos_token_id": 2,
            ], to: dir, seed: 1)
        XCTAssertThrowsError(
            try CausalLM(directory: dir, parallelism: ModelParallelism(expertGroup: SingleRankCommunicator()), threadPool: pool)
        ) { XCTAssertTrue("\($0)".contains("mixture-of-experts"), "\($0)") }
    }

    /// The same on a GGUF file (qwen3moe, stacked expert tensors): each rank takes only its experts' rows.
    func testTwoRanksOnGGUFGiveTheWholeModelsLogits() throws {
        // head_dim = hidden / heads: the GGUF carries it as attention.key_length.
        let dir = try randomMoE(headDim: 16, seed: 5)
        let config = try ModelConfig.load(directory: dir)
        let store = try WeightStore(directory: dir)
        var w = GGUFTestWriter()
        let a = "qwen3moe"
        w.metadata = [
            ("general.architecture", .str(a)), ("\(a).block_count", .u32(2)), ("\(a).embedding_length", .u32(64)),
            ("\(a).feed_forward_length", .u32(128)), ("\(a).expert_feed_forward_length", .u32(48)),
            ("\(a).expert_count", .u32(8)), ("\(a).expert_used_count", .u32(2)), ("\(a).attention.head_count", .u32(4)),
            ("\(a).attention.head_count_kv", .u32(2)), ("\(a).attention.key_length", .u32(16)),
            ("\(a).attention.value_length", .u32(16)), ("\(a).rope.freq_base", .f32(10000)),
            ("\(a).attention.layer_norm_rms_epsilon", .f32(1e-6)), ("\(a).context_length", .u32(2048)),
            ("\(a).vocab_size", .u32(300)), ("tokenizer.ggml.eos_token_id", .u32(2)),
        ]
        // Every HF tensor; experts stacked per (layer, projection) as llama.cpp writes them: ne = [cols, rows, experts].
        var stacked: [String: (dims: [UInt64], values: [[Float]])] = [:]
        var order: [String] = []
        for entry in RandomModelWriter.tensorEntries(config) {
            let (_, info) = try store.info(entry.name)
            let rows = info.shape[0], cols = info.shape.count > 1 ? info.shape[1] : 1
            let m = try store.matrix(entry.name, shape: info.shape)
            var values: [Float] = []
            for r in 0..<rows { for col in 0..<cols { values.append(m.element(r, col)) } }
            let target = try XCTUnwrap(GGUFTensorNames.ggufName(forHF: entry.name, modelType: "qwen3_moe"), entry.name)
            if let e = target.expert {
                if stacked[target.name] == nil {
                    stacked[target.name] = ([UInt64(cols), UInt64(rows), 8], Array(repeating: [], count: 8))
                    order.append(target.name)
                }
                stacked[target.name]!.values[e] = values
            } else {
                let dims: [UInt64] = info.shape.count > 1 ? [UInt64(cols), UInt64(rows)] : [UInt64(rows)]
                w.tensors.append(.init(name: target.name, dims: dims, type: 0, data: GGUFTestWriter.floats(values)))
            }
        }
        for name in order {
            let t = stacked[name]!
            w.tensors.append(.init(name: name, dims: t.dims, type: 0, data: GGUFTestWriter.floats(t.values.flatMap { $0 })))
        }
        let gguf = w.write(name: "model.gguf")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: (gguf as NSString).deletingLastPathComponent) }
        let (refA, refB) = (try reference(dir, Self.batchA), try reference(dir, Self.batchB))
        assertClose(try reference(gguf, Self.batchA), refA)
        let results = try onTwoRanks(gguf) { r, lm in try lm.forwardLogits(r == 0 ? Self.batchA : Self.batchB) }
        assertClose(results[0], refA)
        assertClose(results[1], refB)
    }
}

/// Each rank thread's result, filled under a lock.
private final class RankResults<T>: @unchecked Sendable {
    var results: [Result<T, Error>?]
    init(count: Int) { results = Array(repeating: nil, count: count) }
}
