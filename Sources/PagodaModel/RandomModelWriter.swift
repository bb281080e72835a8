import Foundation
import PagodaKernels

/// Writes a random-weight model folder of a real architecture's shape (config.json,
/// generation_config.json, model.safetensors in bf16) for benchmarks: weights seeded, drawn uniformly
/// with standard deviation `weightStd` (0.02, like HF's initializer_range) so activations stay finite;
/// norm weights 1, biases small.
public enum RandomModelWriter {
    /// Known shapes (`pagoda make-random-model --shape`).
    public static let shapes: [String: [String: Any]] = [
        "qwen2.5-0.5b": [
            "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896,
            "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
            "vocab_size": 151936, "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 1_000_000.0,
            "tie_word_embeddings": true, "hidden_act": "silu", "bos_token_id": 151643, "eos_token_id": 151645,
            "torch_dtype": "bfloat16",
        ],
        "llama3.2-1b": [
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 2048,
            "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
            "head_dim": 64, "vocab_size": 128256, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5,
            "rope_theta": 500_000.0,
            "rope_scaling": [
                "rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
            ],
            "tie_word_embeddings": true, "hidden_act": "silu", "attention_bias": false, "mlp_bias": false,
            "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "torch_dtype": "bfloat16",
        ],
        // Qwen3-30B-A3B's layer shapes (hidden 2048, 32 query / 4 KV heads of 128, experts of 768, top 8,
        // its vocabulary), scaled to fit a small machine: 4 layers of 32 experts instead of 48 of 128.
        "qwen3-30b-a3b-scaled": [
            "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "hidden_size": 2048,
            "intermediate_size": 6144, "moe_intermediate_size": 768, "num_experts": 32, "num_experts_per_tok": 8,
            "decoder_sparse_step": 1, "mlp_only_layers": [Int](), "norm_topk_prob": true, "num_hidden_layers": 4,
            "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": 128, "vocab_size": 151936,
            "max_position_embeddings": 40960, "rms_norm_eps": 1e-6, "rope_theta": 1_000_000.0,
            "tie_word_embeddings": false, "hidden_act": "silu", "attention_bias": false, "bos_token_id": 151643,
            "eos_token_id": 151645, "torch_dtype": "bfloat16",
        ],
    ]

    /// Writes the folder. `maxShardBytes` splits the weights into shards with an index (nil: one file).
    public static func write(
        config json: [String: Any], to directory: String, seed: UInt64, weightStd: Float = 0.02,
        maxShardBytes: Int? = nil
    ) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let configData = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
        try configData.write(to: URL(fileURLWithPath: directory + "/config.json"))
        let config = try ModelConfig.decode(configData, path: directory + "/config.json")
        try config.validate(path: directory + "/config.json")
        var generation: [String: Any] = ["do_sample": false]
        if let bos = json["bos_token_id"] { generation["bos_token_id"] = bos }
        if let eos = json["eos_token_id"] { generation["eos_token_id"] = eos }
        try JSONSerialization.data(withJSONObject: generation, options: [.prettyPrinted, .sortedKeys])
            .write(to: URL(fileURLWithPath: directory + "/generation_config.json"))

        let entries = tensorEntries(config)
        // Group into shards.
        var shards: [[SafetensorsWriter.Entry]] = [[]]
        var shardBytes = 0
        for e in entries {
            if let limit = maxShardBytes, shardBytes > 0, shardBytes + e.byteCount > limit {
                shards.append([])
                shardBytes = 0
            }
            shards[shards.count - 1].append(e)
            shardBytes += e.byteCount
        }
        var weightMap: [String: String] = [:]
        for (i, shard) in shards.enumerated() {
            let file = shards.count == 1 ? "model.safetensors" : String(format: "model-%05d-of-%05d.safetensors", i + 1, shards.count)
            for e in shard { weightMap[e.name] = file }
            try SafetensorsWriter.write(path: directory + "/" + file, entries: shard) { entry, write in
                try produce(entry, seed: seed, std: weightStd, write: write)
            }
        }
        if shards.count > 1 {
            let index: [String: Any] = [
                "metadata": ["total_size": entries.map(\.byteCount).reduce(0, +)], "weight_map": weightMap,
            ]
            try JSONSerialization.data(withJSONObject: index, options: [.prettyPrinted, .sortedKeys])
                .write(to: URL(fileURLWithPath: directory + "/model.safetensors.index.json"))
        }
    }

    /// Every tensor an HF checkpoint of this config has, in HF order.
    static func tensorEntries(_ c: ModelConfig) -> [SafetensorsWriter.Entry] {
        let h = c.hiddenSize, d = c.resolvedHeadDim
        let q = c.numAttentionHeads * d, kv = c.resolvedNumKVHeads * d
        var e: [SafetensorsWriter.Entry] = []
        func add(_ name: String, _ shape: [Int]) { e.append(.init(name: name, dtype: "BF16", shape: shape)) }
        add("model.embed_tokens.weight", [c.vocabSize, h])
        for i in 0..<c.numHiddenLayers {
            let p = "model.layers.\(i)"
            add("\(p).input_layernorm.weight", [h])
            add("\(p).post_attention_layernorm.weight", [h])
            add("\(p).self_attn.q_proj.weight", [q, h])
            add("\(p).self_attn.k_proj.weight", [kv, h])
            add("\(p).self_attn.v_proj.weight", [kv, h])
            if c.resolvedAttentionBias {
                add("\(p).self_attn.q_proj.bias", [q])
                add("\(p).self_attn.k_proj.bias", [kv])
                add("\(p).self_attn.v_proj.bias", [kv])
            }
            add("\(p).self_attn.o_proj.weight", [h, q])
            if c.architecture.qkNorm {
                add("\(p).self_attn.q_norm.weight", [d])
                add("\(p).self_attn.k_norm.weight", [d])
            }
            if c.isMoELayer(i) {
                let inter = c.resolvedExpertIntermediateSize
                add(c.architecture.routerName(p), [c.resolvedNumExperts, h])
                for x in 0..<c.resolvedNumExperts {
                    let n = c.architecture.expertNames(p, x)
                    add(n.gate, [inter, h])
                    add(n.up, [inter, h])
                    add(n.down, [h, inter])
                }
            } else {
                let inter = c.intermediateSize ?? 0
                add("\(p).mlp.gate_proj.weight", [inter, h])
                add("\(p).mlp.up_proj.weight", [inter, h])
                add("\(p).mlp.down_proj.weight", [h, inter])
            }
        }
        add("model.norm.weight", [h])
        if !c.resolvedTieWordEmbeddings { add("lm_head.weight", [c.vocabSize, h]) }
        return e
    }

    /// Streams one tensor: norms are 1, everything else uniform with the given std, seeded by
    /// (seed, tensor name) so shards and order do not change values.
    static func produce(
        _ e: SafetensorsWriter.Entry, seed: UInt64, std: Float, write: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let count = e.shape.reduce(1, *)
        let isNorm = e.name.hasSuffix("norm.weight")
        var state = seed ^ 0x9E37_79B9_7F4A_7C15
        for byte in e.name.utf8 { state = (state ^ UInt64(byte)) &* 0x100_0000_01B3 }
        let amplitude = std * Float(3).squareRoot()  // uniform [-a, a] has std a/√3
        let chunk = 1 << 16
        var buffer = [UInt16](repeating: 0, count: chunk)
        var done = 0
        while done < count {
            let n = min(chunk, count - done)
            for i in 0..<n {
                if isNorm {
                    buffer[i] = BFloat16.fromFloat(1)
                } else {
                    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                    let u = Float(UInt32(truncatingIfNeeded: state >> 40)) / Float(1 << 24) * 2 - 1
                    buffer[i] = BFloat16.fromFloat(u * amplitude)
                }
            }
            try buffer.withUnsafeBytes { try write(UnsafeRawBufferPointer(rebasing: $0[0..<(n * 2)])) }
            done += n
        }
    }
}
