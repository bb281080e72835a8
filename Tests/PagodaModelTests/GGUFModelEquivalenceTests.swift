import Foundation
import PagodaKernels
import XCTest

@testable import PagodaModel

/// A model written as safetensors and the same weights written as GGUF the way llama.cpp's converter writes
/// them (GGUF names, ggml dimension order, llama Q/K rows interleaved per head) give the same logits:
/// names, shapes, config mapping and the Q/K un-permutation of the GGUF loader together.
final class GGUFModelEquivalenceTests: XCTestCase {
    let pool = ThreadPool(threads: 1)

    func logits(_ path: String) throws -> [Float] {
        let model = try CausalLM(directory: path, threadPool: pool)
        try model.allocateKVCache(numBlocks: 2, blockSize: 16)
        let batch = ForwardBatch(
            tokenIds: [5, 17, 250, 3], positions: [0, 1, 2, 3], slotMapping: [0, 1, 2, 3], queryStartLoc: [0, 4],
            contextLens: [4], blockTables: [[0]], logitsIndices: [1, 3])
        return try model.forwardLogits(batch)
    }

    /// Converts the safetensors model in `dir` (architecture `arch`) to an F32 GGUF.
    func convert(_ dir: String, arch: String, config c: [String: Any]) throws -> String {
        let config = try ModelConfig.load(directory: dir)
        let store = try WeightStore(directory: dir)
        let h = c["hidden_size"] as! Int, heads = c["num_attention_heads"] as! Int, kv = c["num_key_value_heads"] as! Int
        let d = h / heads, inter = c["intermediate_size"] as! Int, vocab = c["vocab_size"] as! Int
        var w = GGUFTestWriter()
        w.metadata = [
            ("general.architecture", .str(arch)), ("\(arch).block_count", .u32(UInt32(c["num_hidden_layers"] as! Int))),
            ("\(arch).embedding_length", .u32(UInt32(h))), ("\(arch).feed_forward_length", .u32(UInt32(inter))),
            ("\(arch).attention.head_count", .u32(UInt32(heads))), ("\(arch).attention.head_count_kv", .u32(UInt32(kv))),
            ("\(arch).rope.freq_base", .f32(Float(c["rope_theta"] as! Double))),
            ("\(arch).attention.layer_norm_rms_epsilon", .f32(1e-6)), ("\(arch).context_length", .u32(2048)),
            ("\(arch).vocab_size", .u32(UInt32(vocab))), ("tokenizer.ggml.eos_token_id", .u32(2)),
        ]
        var names = ["model.embed_tokens.weight", "model.norm.weight"]
        if !config.resolvedTieWordEmbeddings { names.append("lm_head.weight") }
        for l in 0..<config.numHiddenLayers {
            let p = "model.layers.\(l)"
            names += ["input_layernorm", "post_attention_layernorm"].map { "\(p).\($0).weight" }
            names += ["q_proj", "k_proj", "v_proj", "o_proj"].map { "\(p).self_attn.\($0).weight" }
            names += ["gate_proj", "up_proj", "down_proj"].map { "\(p).mlp.\($0).weight" }
            if store.contains("\(p).self_attn.q_proj.bias") {
                names += ["q_proj", "k_proj", "v_proj"].map { "\(p).self_attn.\($0).bias" }
            }
        }
        let permuted = GGUFTensorNames.hasPermutedQK(architecture: arch)
        for name in names {
            let (_, info) = try store.info(name)
            let rows = info.shape[0], cols = info.shape.count > 1 ? info.shape[1] : 1
            let m = try store.matrix(name, shape: info.shape)
            let qk = permuted && (name.contains("q_proj") || name.contains("k_proj"))
            var values: [Float] = []
            for g in 0..<rows {
                let r = qk ? GGUFTensorNames.hfRow(forGGUFRow: g, headDim: d) : g
                for col in 0..<cols { values.append(m.element(r, col)) }
            }
            let gguf = try XCTUnwrap(GGUFTensorNames.ggufName(forHF: name, modelType: config.modelType)?.name, name)
            let dims: [UInt64] = info.shape.count > 1 ? [UInt64(cols), UInt64(rows)] : [UInt64(rows)]
            w.tensors.append(.init(name: gguf, dims: dims, type: 0, data: GGUFTestWriter.floats(values)))
        }
        return w.write(name: "model.gguf")
    }

    func check(_ modelType: String, arch: String) throws {
        let dir = NSTemporaryDirectory() + "pagoda-gguf-eq-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        let c: [String: Any] = [
            "model_type": modelType, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300, "rms_norm_eps": 1e-6,
            "rope_theta": 10000.0, "tie_word_embeddings": false, "eos_token_id": 2, "max_position_embeddings": 2048,
        ]
        try RandomModelWriter.write(config: c, to: dir, seed: 11)
        let gguf = try convert(dir, arch: arch, config: c)
        let expected = try logits(dir)
        let got = try logits(gguf)
        XCTAssertEqual(got.count, expected.count)
        let worst = zip(got, expected).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThan(worst, 1e-4, "\(modelType): GGUF logits differ from safetensors by \(worst)")
        // The folder holding the file loads the same.
        XCTAssertEqual(try logits((gguf as NSString).deletingLastPathComponent), got)
    }

    func testLlamaWithPermutedQKMatchesSafetensors() throws { try check("llama", arch: "llama") }

    func testQwen2WithBiasesMatchesSafetensors() throws { try check("qwen2", arch: "qwen2") }
}
