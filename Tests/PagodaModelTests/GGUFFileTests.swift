import Foundation
import PagodaTestSupport
import XCTest

@testable import PagodaModel

final class GGUFFileTests: XCTestCase {
    typealias W = GGUFTestWriter

    /// Metadata of every value type, nested and empty arrays included.
    static let everyType: [(String, W.Value)] = [
        ("general.architecture", .str("llama")),
        ("t.u8", .u8(200)), ("t.i8", .i8(-100)), ("t.u16", .u16(60000)), ("t.i16", .i16(-30000)),
        ("t.u32", .u32(4_000_000_000)), ("t.i32", .i32(-2_000_000_000)), ("t.u64", .u64(UInt64(Int.max) + 5)),
        ("t.i64", .i64(-(1 << 62))), ("t.f32", .f32(1.5)), ("t.f64", .f64(-2.25)), ("t.bool", .bool(true)),
        ("t.str", .str("héllo ▁world")), ("t.empty", .str("")),
        ("t.arr_str", .array(8, [.str("a"), .str(""), .str("ü")])),
        ("t.arr_i32", .array(5, [.i32(1), .i32(-2), .i32(3)])),
        ("t.arr_f32", .array(6, [.f32(0.5), .f32(-1)])),
        ("t.arr_bool", .array(7, [.bool(false), .bool(true)])),
        ("t.arr_nested", .array(9, [.array(5, [.i32(1), .i32(2)]), .array(5, [.i32(3)])])),
        ("t.arr_empty", .array(10, [])),
    ]

    static func tensors() -> [W.Tensor] {
        var f16: [UInt8] = []
        for x: Float16 in [1, -2, 0.5, 4] { W.put(x.bitPattern, &f16) }
        var bf16: [UInt8] = []
        for x: Float in [1, -3, 0.25] { W.put(UInt16(x.bitPattern >> 16), &bf16) }
        return [
            W.Tensor(name: "a.f32", dims: [3, 2], type: 0, data: W.floats([0, 1, 2, 3, 4, 5])),
            W.Tensor(name: "b.f16", dims: [2, 2], type: 1, data: f16),
            W.Tensor(name: "c.bf16", dims: [3], type: 30, data: bf16),
            W.Tensor(name: "d.q8_0", dims: [32, 2], type: 8, data: (0..<68).map { UInt8($0) }),
            W.Tensor(name: "e.q4_k", dims: [256, 1, 1], type: 12, data: [UInt8](repeating: 7, count: 144)),
        ]
    }

    func testEveryValueTypeVersionsAndAlignment() throws {
        for (version, alignment) in [(UInt32(2), 32), (3, 32), (3, 64), (2, 128)] {
            var w = W(version: version, alignment: alignment, metadata: Self.everyType, tensors: Self.tensors())
            if alignment != 32 { w.metadata.append(("general.alignment", .u32(UInt32(alignment)))) }
            let (bytes, _, dataOffset) = w.bytes()
            let f = try GGUFFile(path: W.write(bytes))
            XCTAssertEqual(f.version, Int(version))
            XCTAssertEqual(f.alignment, alignment)
            XCTAssertEqual(f.dataOffset, dataOffset)
            XCTAssertEqual(f.dataOffset % alignment, 0)
            let m = f.metadata
            XCTAssertEqual(m.keys, w.metadata.map(\.0))
            XCTAssertEqual(m["t.u8"], .uint8(200))
            XCTAssertEqual(m["t.i8"], .int8(-100))
            XCTAssertEqual(m["t.u16"], .uint16(60000))
            XCTAssertEqual(m["t.i16"], .int16(-30000))
            XCTAssertEqual(m["t.u32"], .uint32(4_000_000_000))
            XCTAssertEqual(m["t.i32"], .int32(-2_000_000_000))
            XCTAssertEqual(m["t.u64"], .uint64(UInt64(Int.max) + 5))
            XCTAssertNil(m["t.u64"]?.int, "a uint64 above Int.max is not an Int")
            XCTAssertEqual(m["t.i64"]?.int, -(1 << 62))
            XCTAssertEqual(m["t.f32"], .float32(1.5))
            XCTAssertEqual(m["t.f64"]?.double, -2.25)
            XCTAssertEqual(m["t.bool"]?.bool, true)
            XCTAssertEqual(m["t.str"]?.string, "héllo ▁world")
            XCTAssertEqual(m["t.empty"]?.string, "")
            XCTAssertEqual(m["t.arr_str"]?.strings, ["a", "", "ü"])
            XCTAssertEqual(m["t.arr_i32"]?.ints, [1, -2, 3])
            XCTAssertEqual(m["t.arr_f32"]?.doubles, [0.5, -1])
            XCTAssertEqual(m["t.arr_bool"], .array(.bool, [.bool(false), .bool(true)]))
            XCTAssertEqual(
                m["t.arr_nested"], .array(.array, [.array(.int32, [.int32(1), .int32(2)]), .array(.int32, [.int32(3)])]))
            XCTAssertEqual(m["t.arr_empty"], .array(.uint64, []))
            XCTAssertEqual(f.architecture, "llama")

            XCTAssertEqual(f.tensors.map(\.name), ["a.f32", "b.f16", "c.bf16", "d.q8_0", "e.q4_k"])
            let a = try XCTUnwrap(f.tensor("a.f32"))
            XCTAssertEqual(a.type, .f32)
            XCTAssertEqual(a.dimensions, [3, 2])
            XCTAssertEqual(a.shape, [2, 3])
            XCTAssertEqual(a.byteCount, 24)
            XCTAssertEqual(try a.float32Values(path: f.path), [0, 1, 2, 3, 4, 5])
            XCTAssertEqual(a.row(1).loadUnaligned(as: Float.self), 3)
            XCTAssertEqual(try f.tensor("b.f16")?.float32Values(path: f.path), [1, -2, 0.5, 4])
            XCTAssertEqual(try f.tensor("c.bf16")?.float32Values(path: f.path), [1, -3, 0.25])
            let q = try XCTUnwrap(f.tensor("d.q8_0"))
            XCTAssertEqual(q.type, .q8_0)
            XCTAssertEqual(q.byteCount, 68)
            XCTAssertEqual(q.rowCount, 2)
            XCTAssertEqual(q.rowByteCount, 34)
            XCTAssertEqual(q.row(1).load(as: UInt8.self), 34, "views point into the file's data")
            XCTAssertThrowsError(try q.float32Values(path: f.path))
            let k = try XCTUnwrap(f.tensor("e.q4_k"))
            XCTAssertEqual(k.byteCount, 144)
            XCTAssertEqual(k.shape, [1, 1, 256])
            for t in f.tensors {
                XCTAssertEqual(t.offset % alignment, 0)
                XCTAssertEqual(Int(bitPattern: t.data) % alignment, 0, "the mapping is page-aligned, so tensors are aligned in memory")
            }
            XCTAssertEqual(
                m.plainValues(prefix: "t.arr_").mapValues { "\($0)" },
                ["t.arr_str": "[\"a\", \"\", \"ü\"]", "t.arr_i32": "[1, -2, 3]", "t.arr_f32": "[0.5, -1.0]",
                 "t.arr_bool": "[false, true]", "t.arr_nested": "[[1, 2], [3]]", "t.arr_empty": "[]"])
        }
    }

    /// A file written by llama.cpp's own Python writer (gguf-py), committed with the script that made it.
    func testFileWrittenByGGUFPy() throws {
        let f = try GGUFFile(path: GGUFTestFiles.referenceDirectory + "/tiny_gguf_v3.gguf")
        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(f.alignment, 64)
        XCTAssertEqual(f.dataOffset, 768)
        XCTAssertEqual(f.metadata["t.u64"], .uint64(UInt64(1) << 63 + 5))
        XCTAssertEqual(f.metadata["t.str"]?.string, "héllo ▁world")
        XCTAssertEqual(f.metadata["t.arr_nested"]?.array?.count, 2)
        XCTAssertEqual(f.metadata["t.arr_f32"]?.doubles, [0.5, -1])
        XCTAssertEqual(f.tensors.map(\.name), ["a.f32", "b.f16", "c.q8_0"])
        XCTAssertEqual(f.tensor("a.f32")?.shape, [2, 3])
        XCTAssertEqual(try f.tensor("a.f32")?.float32Values(path: f.path), [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(try f.tensor("b.f16")?.float32Values(path: f.path), [1, -2, 0.5, 4])
        XCTAssertEqual(f.tensor("c.q8_0")?.offset, 128)
        XCTAssertEqual(f.tensor("c.q8_0")?.byteCount, 68)
    }

    // MARK: Bad files

    private func assertError(_ bytes: [UInt8], contains fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        let path = W.write(bytes, name: "bad.gguf")
        XCTAssertThrowsError(try GGUFFile(path: path), file: file, line: line) { error in
            let message = "\(error)"
            XCTAssertTrue(message.hasPrefix(path), "names the file: \(message)", file: file, line: line)
            XCTAssertTrue(message.contains(fragment), "\(message) should mention \(fragment)", file: file, line: line)
            XCTAssertFalse(message.contains("\n"), "one line: \(message)", file: file, line: line)
        }
    }

    func testEveryTruncationIsAnError() {
        let (bytes, _, _) = W(metadata: Self.everyType, tensors: Self.tensors()).bytes()
        let path = W.write([], name: "truncated.gguf")
        for n in 0..<bytes.count {
            FileManager.default.createFile(atPath: path, contents: Data(bytes[0..<n]))
            XCTAssertThrowsError(try GGUFFile(path: path), "prefix of \(n) bytes") { error in
                XCTAssertTrue(error is ModelLoadError, "\(error)")
            }
        }
    }

    func testCorruptHeaders() {
        let base = W(metadata: [("general.architecture", .str("llama"))], tensors: [Self.tensors()[0]])
        var bytes = base.bytes().bytes
        bytes[0] = UInt8(ascii: "X")
        assertError(bytes, contains: "bad magic")
        for v: UInt32 in [1, 4] { assertError(W(version: v).bytes().bytes, contains: "unsupported version \(v)") }
        assertError(W(version: UInt32(3).byteSwapped).bytes().bytes, contains: "big-endian")

        // A string length larger than the file.
        bytes = base.bytes().bytes
        bytes.replaceSubrange(24..<32, with: withUnsafeBytes(of: UInt64(1 << 40).littleEndian, Array.init))
        assertError(bytes, contains: "has length 1099511627776")
        // An unknown value type and an array count the file cannot hold.
        assertError(W(metadata: [("k", .u8(1))]).bytes().bytes.replacing(tagOf: "k", with: 13), contains: "unknown value type 13")
        assertError(
            W(metadata: [("k", .array(5, [.i32(1)]))]).bytes().bytes.replacingArrayCount(of: "k", with: 1 << 60),
            contains: "does not fit")
        assertError(W(metadata: [("k", .u8(2))]).bytes().bytes.replacing(tagOf: "k", with: 7), contains: "bool value 2")
        assertError(W(metadata: [("k", .u8(1)), ("k", .u8(2))]).bytes().bytes, contains: "duplicate metadata key k")
        assertError(W(metadata: [("general.alignment", .u32(48))]).bytes().bytes, contains: "not a power of two")
        assertError(W(metadata: [("general.alignment", .str("32"))]).bytes().bytes, contains: "must be a uint32")
        assertError(W(tensors: [Self.tensors()[0], Self.tensors()[0]]).bytes().bytes, contains: "duplicate tensor name a.f32")
        var deep = W.Value.array(5, [.i32(1)])
        for _ in 0..<10 { deep = .array(9, [deep]) }
        assertError(W(metadata: [("deep", deep)]).bytes().bytes, contains: "nested deeper")
    }

    func testCorruptTensorInfos() {
        func one(_ t: W.Tensor) -> [UInt8] { W(tensors: [t]).bytes().bytes }
        let f32 = Self.tensors()[0]
        var t = f32
        t.type = 99
        assertError(one(t), contains: "ggml type unknown id 99")
        t.type = 6
        assertError(one(t), contains: "ggml type Q5_0 (id 6), which is not supported (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K)")
        t = f32
        t.offsetOverride = 8
        assertError(one(t), contains: "not a multiple of the alignment 32")
        t.offsetOverride = 1 << 20
        assertError(one(t), contains: "truncated file: tensor a.f32 needs")
        t = f32
        t.dims = [3, 2, 1, 1, 1]
        assertError(one(t), contains: "5 dimensions")
        t.dims = [UInt64(1) << 62, 1 << 62]
        assertError(one(t), contains: "overflows")
        t = Self.tensors()[3]
        t.dims = [16, 4]
        assertError(one(t), contains: "row length 16 is not a multiple of the Q8_0 block size 32")
    }

    // MARK: Names, Q/K permutation, config

    func testTensorNameMapping() {
        let cases: [(String, String)] = [
            ("token_embd.weight", "model.embed_tokens.weight"), ("output_norm.weight", "model.norm.weight"),
            ("output.weight", "lm_head.weight"), ("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight"),
            ("blk.3.attn_k.bias", "model.layers.3.self_attn.k_proj.bias"), ("blk.3.attn_v.weight", "model.layers.3.self_attn.v_proj.weight"),
            ("blk.12.attn_output.weight", "model.layers.12.self_attn.o_proj.weight"),
            ("blk.1.attn_norm.weight", "model.layers.1.input_layernorm.weight"),
            ("blk.1.ffn_norm.weight", "model.layers.1.post_attention_layernorm.weight"),
            ("blk.1.ffn_gate.weight", "model.layers.1.mlp.gate_proj.weight"), ("blk.1.ffn_up.weight", "model.layers.1.mlp.up_proj.weight"),
            ("blk.1.ffn_down.weight", "model.layers.1.mlp.down_proj.weight"),
            ("blk.2.attn_q_norm.weight", "model.layers.2.self_attn.q_norm.weight"),
            ("blk.2.attn_k_norm.weight", "model.layers.2.self_attn.k_norm.weight"),
        ]
        for (g, hf) in cases {
            XCTAssertEqual(GGUFTensorNames.hfName(g, modelType: "qwen3"), hf)
            XCTAssertEqual(GGUFTensorNames.ggufName(forHF: hf, modelType: "qwen3")?.name, g)
            XCTAssertNil(GGUFTensorNames.ggufName(forHF: hf, modelType: "qwen3")?.expert)
        }
        XCTAssertEqual(GGUFTensorNames.hfName("blk.4.ffn_gate_inp.weight", modelType: "mixtral"), "model.layers.4.block_sparse_moe.gate.weight")
        XCTAssertEqual(GGUFTensorNames.hfName("blk.4.ffn_gate_inp.weight", modelType: "qwen3_moe"), "model.layers.4.mlp.gate.weight")
        XCTAssertNil(GGUFTensorNames.hfName("blk.4.ffn_up_exps.weight", modelType: "qwen3_moe"))
        XCTAssertNil(GGUFTensorNames.hfName("rope_freqs.weight", modelType: "llama"))
        XCTAssertEqual(
            GGUFTensorNames.hfExpertName("blk.4.ffn_up_exps.weight", expert: 7, modelType: "qwen3_moe"),
            "model.layers.4.mlp.experts.7.up_proj.weight")
        XCTAssertEqual(
            GGUFTensorNames.hfExpertName("blk.4.ffn_down_exps.weight", expert: 2, modelType: "mixtral"),
            "model.layers.4.block_sparse_moe.experts.2.w2.weight")
        for (modelType, gate) in [("mixtral", "block_sparse_moe.experts.5.w1"), ("qwen3_moe", "mlp.experts.5.gate_proj")] {
            let r = GGUFTensorNames.ggufName(forHF: "model.layers.9.\(gate).weight", modelType: modelType)
            XCTAssertEqual(r?.name, "blk.9.ffn_gate_exps.weight")
            XCTAssertEqual(r?.expert, 5)
            XCTAssertEqual(
                GGUFTensorNames.ggufName(forHF: "model.layers.9.\(modelType == "mixtral" ? "block_sparse_moe" : "mlp").gate.weight", modelType: modelType)?.name,
                "blk.9.ffn_gate_inp.weight")
        }
        XCTAssertNil(GGUFTensorNames.ggufName(forHF: "model.layers.x.mlp.up_proj.weight", modelType: "llama"))
    }

    /// The row map against llama.cpp's converter (`LlamaModel.permute`, run by Tests/GGUFReference/make_gguf_reference.py).
    func testQKPermutationMatchesConverter() throws {
        struct Case: Decodable {
            var n_head: Int, n_head_kv: Int, head_dim: Int, which: String, hf_row_of_gguf_row: [Int]
        }
        struct Ref: Decodable { var cases: [Case] }
        let data = try Data(contentsOf: URL(fileURLWithPath: GGUFTestFiles.referenceDirectory + "/permute_reference.json"))
        let ref = try JSONDecoder().decode(Ref.self, from: data)
        XCTAssertEqual(ref.cases.count, 5)
        for c in ref.cases {
            for (g, hf) in c.hf_row_of_gguf_row.enumerated() {
                XCTAssertEqual(GGUFTensorNames.hfRow(forGGUFRow: g, headDim: c.head_dim), hf, "\(c.which) \(c.n_head)/\(c.n_head_kv)")
                XCTAssertEqual(GGUFTensorNames.ggufRow(forHFRow: hf, headDim: c.head_dim), g)
            }
        }
        XCTAssertEqual(GGUFTensorNames.hfRowOrder(rows: 8, headDim: 4), [0, 2, 1, 3, 4, 6, 5, 7])
        XCTAssertTrue(GGUFTensorNames.hasPermutedQK(architecture: "llama"))
        XCTAssertFalse(GGUFTensorNames.hasPermutedQK(architecture: "qwen2"))
    }

    private func configFile(_ arch: String, _ extra: [(String, W.Value)], tensors: [W.Tensor] = []) -> String {
        var md: [(String, W.Value)] = [("general.architecture", .str(arch))]
        md += [
            ("\(arch).block_count", .u32(2)), ("\(arch).embedding_length", .u32(64)), ("\(arch).feed_forward_length", .u32(128)),
            ("\(arch).attention.head_count", .u32(4)), ("\(arch).attention.head_count_kv", .u32(2)),
            ("\(arch).rope.freq_base", .f32(1_000_000)), ("\(arch).attention.layer_norm_rms_epsilon", .f32(1e-6)),
            ("\(arch).context_length", .u32(4096)),
            ("tokenizer.ggml.tokens", .array(8, (0..<100).map { .str("t\($0)") })),
            ("tokenizer.ggml.bos_token_id", .u32(1)), ("tokenizer.ggml.eos_token_id", .u32(2)),
            ("tokenizer.ggml.eot_token_id", .u32(3)),
        ]
        let overridden = Set(extra.map(\.0))
        return W(metadata: md.filter { !overridden.contains($0.0) } + extra, tensors: tensors).write()
    }

    func testConfigMapping() throws {
        let qwen3 = try ModelConfig.load(gguf: GGUFFile(path: configFile("qwen3", [("qwen3.attention.key_length", .u32(32))])))
        XCTAssertEqual(qwen3.modelType, "qwen3")
        XCTAssertEqual(qwen3.hiddenSize, 64)
        XCTAssertEqual(qwen3.numHiddenLayers, 2)
        XCTAssertEqual(qwen3.intermediateSize, 128)
        XCTAssertEqual(qwen3.numAttentionHeads, 4)
        XCTAssertEqual(qwen3.resolvedNumKVHeads, 2)
        XCTAssertEqual(qwen3.resolvedHeadDim, 32)
        XCTAssertEqual(qwen3.resolvedRopeTheta, 1_000_000)
        XCTAssertEqual(qwen3.resolvedRmsNormEps, 1e-6, accuracy: 1e-12)
        XCTAssertEqual(qwen3.resolvedMaxPositionEmbeddings, 4096)
        XCTAssertEqual(qwen3.vocabSize, 100, "vocab size from the token list when there is no vocab_size key")
        XCTAssertTrue(qwen3.resolvedTieWordEmbeddings, "no output.weight")
        XCTAssertEqual(qwen3.eosTokenIds, [2, 3])
        XCTAssertEqual(qwen3.bosTokenId, TokenIdList([1]))

        let moe = try ModelConfig.load(
            gguf: GGUFFile(path: configFile("llama", [("llama.expert_count", .u32(8)), ("llama.expert_used_count", .u32(2)), ("llama.vocab_size", .u32(120))])))
        XCTAssertEqual(moe.modelType, "mixtral")
        XCTAssertEqual(moe.resolvedNumExperts, 8)
        XCTAssertEqual(moe.numExpertsPerTok, 2)
        XCTAssertEqual(moe.vocabSize, 120)
        let q3moe = try ModelConfig.load(
            gguf: GGUFFile(path: configFile("qwen3moe", [
                ("qwen3moe.expert_count", .u32(4)), ("qwen3moe.expert_used_count", .u32(2)), ("qwen3moe.expert_feed_forward_length", .u32(32)),
            ])))
        XCTAssertEqual(q3moe.modelType, "qwen3_moe")
        XCTAssertEqual(q3moe.resolvedExpertIntermediateSize, 32)
        XCTAssertEqual(q3moe.normTopkProb, true)
        let linear = try ModelConfig.load(
            gguf: GGUFFile(path: configFile("llama", [("llama.rope.scaling.type", .str("linear")), ("llama.rope.scaling.factor", .f32(2))])))
        XCTAssertEqual(linear.ropeScaling?.ropeType, "linear")
        XCTAssertEqual(linear.ropeScaling?.factor, 2)
        let tied = try ModelConfig.load(
            gguf: GGUFFile(path: configFile("mistral", [], tensors: [W.Tensor(name: "output.weight", dims: [1], type: 0, data: W.floats([1]))])))
        XCTAssertFalse(tied.resolvedTieWordEmbeddings)

        func assertLoadError(_ path: String, _ fragment: String, line: UInt = #line) {
            XCTAssertThrowsError(try ModelConfig.load(gguf: GGUFFile(path: path)), line: line) {
                XCTAssertTrue("\($0)".contains(fragment), "\($0)", line: line)
            }
        }
        assertLoadError(configFile("gemma2", []), "unsupported GGUF general.architecture \"gemma2\" (supported: llama, mistral, qwen2, qwen3, qwen3moe)")
        assertLoadError(configFile("qwen2moe", []), "\"qwen2moe\"")
        assertLoadError(configFile("llama", [("llama.rope.dimension_count", .u32(8))]), "partial RoPE")
        assertLoadError(configFile("llama", [("llama.rope.scaling.type", .str("yarn"))]), "yarn")
        assertLoadError(configFile("llama", [("llama.block_count", .str("2"))]), "llama.block_count must be an integer")
        assertLoadError(W(metadata: [("general.architecture", .str("llama"))]).write(), "missing llama.embedding_length")
        assertLoadError(W().write(), "no general.architecture")
        assertLoadError(configFile("llama", [("split.count", .u16(3))]), "split.count = 3 is not supported")
    }

    /// Llama 3.x files carry their RoPE scaling as `rope_freqs.weight` (head width / 2 divisors): read, and checked.
    func testRopeFrequencyFactors() throws {
        func file(_ values: [Float]) throws -> GGUFFile {
            try GGUFFile(path: configFile(
                "llama", [], tensors: [W.Tensor(name: "rope_freqs.weight", dims: [UInt64(values.count)], type: 0, data: W.floats(values))]))
        }
        let factors: [Float] = [1, 1, 1, 1.5, 3, 8, 8, 8]  // head width 64 / 4 heads = 16: 8 frequencies
        let config = try ModelConfig.load(gguf: file(factors))
        XCTAssertEqual(config.resolvedHeadDim, 16)
        XCTAssertEqual(try ModelConfig.ggufRopeFrequencyFactors(gguf: file(factors), headDim: 16), factors)
        XCTAssertNil(try ModelConfig.ggufRopeFrequencyFactors(gguf: GGUFFile(path: configFile("llama", [])), headDim: 16))
        XCTAssertThrowsError(try ModelConfig.ggufRopeFrequencyFactors(gguf: file([1, 2]), headDim: 16)) {
            XCTAssertTrue("\($0)".contains("rope_freqs.weight has 2 elements, not 8"), "\($0)")
        }
        XCTAssertThrowsError(try ModelConfig.ggufRopeFrequencyFactors(gguf: file([1, 1, 1, 0, 1, 1, 1, 1]), headDim: 16)) {
            XCTAssertTrue("\($0)".contains("rope_freqs.weight[3] = 0.0 is not a positive finite number"), "\($0)")
        }
    }

    func testModelFileInAFolder() throws {
        let one = W().write(name: "model.gguf")
        let dir = (one as NSString).deletingLastPathComponent
        XCTAssertEqual(try GGUFFile.modelFile(at: dir), one)
        XCTAssertEqual(try GGUFFile.modelFile(at: "/x/y.gguf"), "/x/y.gguf")
        XCTAssertNil(try GGUFFile.modelFile(at: (W().write() as NSString).deletingLastPathComponent + "/missing"))
        FileManager.default.createFile(atPath: dir + "/other.gguf", contents: Data())
        XCTAssertThrowsError(try GGUFFile.modelFile(at: dir)) {
            XCTAssertEqual("\($0)", "\(dir): invalid GGUF file: the folder holds 2 GGUF files (model.gguf, other.gguf); name one")
        }
    }

    // MARK: SmolLM2 (the real file)

    func testSmolLM2() throws {
        guard let path = GGUFTestFiles.smolLM2 else { throw XCTSkip(GGUFTestFiles.smolLM2SkipReason) }
        let f = try GGUFFile(path: path)
        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(f.tensors.count, 272)
        var counts: [GGUFTensorType: Int] = [:]
        for t in f.tensors { counts[t.type, default: 0] += 1 }
        XCTAssertEqual(counts, [.q4_1: 210, .f32: 61, .q8_0: 1])
        XCTAssertEqual(f.tensor("token_embd.weight")?.type, .q8_0)
        XCTAssertEqual(f.tensor("token_embd.weight")?.shape, [49152, 576])
        XCTAssertEqual(f.tensor("blk.0.attn_k.weight")?.shape, [192, 576])
        XCTAssertEqual(f.tensor("blk.0.ffn_down.weight")?.shape, [576, 1536])
        XCTAssertNil(f.tensor("output.weight"))
        XCTAssertEqual(f.metadata["tokenizer.ggml.pre"]?.string, "smollm")
        XCTAssertEqual(f.metadata["tokenizer.ggml.tokens"]?.strings?.count, 49152)
        XCTAssertEqual(f.metadata["tokenizer.ggml.merges"]?.strings?.count, 48900)
        XCTAssertEqual(f.metadata["tokenizer.chat_template"]?.string?.hasPrefix("{% for message in messages %}"), true)
        // Every tensor maps to an HF name the decoder asks for.
        for t in f.tensors { XCTAssertNotNil(GGUFTensorNames.hfName(t.name, modelType: "llama"), t.name) }
        XCTAssertEqual(f.tensor(forHF: "model.layers.29.self_attn.q_proj.weight", modelType: "llama")?.tensor.name, "blk.29.attn_q.weight")
        XCTAssertNil(f.tensor(forHF: "lm_head.weight", modelType: "llama"), "tied: the file has no output.weight")
        let norm = try XCTUnwrap(f.tensor("output_norm.weight")).float32Values(path: path)
        XCTAssertEqual(norm.count, 576)
        XCTAssertTrue(norm.allSatisfy { $0.isFinite })

        let c = try ModelConfig.load(gguf: f)
        XCTAssertEqual(c.modelType, "llama")
        XCTAssertEqual(c.numHiddenLayers, 30)
        XCTAssertEqual(c.hiddenSize, 576)
        XCTAssertEqual(c.intermediateSize, 1536)
        XCTAssertEqual(c.numAttentionHeads, 9)
        XCTAssertEqual(c.resolvedNumKVHeads, 3)
        XCTAssertEqual(c.resolvedHeadDim, 64)
        XCTAssertEqual(c.vocabSize, 49152)
        XCTAssertEqual(c.resolvedRopeTheta, 100_000)
        XCTAssertEqual(c.resolvedMaxPositionEmbeddings, 8192)
        XCTAssertEqual(c.resolvedRmsNormEps, 1e-5, accuracy: 1e-10)
        XCTAssertTrue(c.resolvedTieWordEmbeddings)
        XCTAssertEqual(c.eosTokenIds, [2])
    }
}

extension Array where Element == UInt8 {
    /// Offset just past the key string `key` in a written file.
    fileprivate func end(ofKey key: String) -> Int {
        var needle: [UInt8] = []
        GGUFTestWriter.put(key, &needle)
        for i in 0...(count - needle.count) where Array(self[i..<(i + needle.count)]) == needle { return i + needle.count }
        fatalError("key \(key) not in the test file")
    }

    /// The file with the value type tag of `key` replaced.
    fileprivate func replacing(tagOf key: String, with tag: UInt32) -> [UInt8] {
        var out = self
        let at = end(ofKey: key)
        out.replaceSubrange(at..<(at + 4), with: Swift.withUnsafeBytes(of: tag.littleEndian, Array.init))
        return out
    }

    /// The file with the element count of array `key` replaced.
    fileprivate func replacingArrayCount(of key: String, with n: UInt64) -> [UInt8] {
        var out = self
        let at = end(ofKey: key) + 8
        out.replaceSubrange(at..<(at + 8), with: Swift.withUnsafeBytes(of: n.littleEndian, Array.init))
        return out
    }
}
