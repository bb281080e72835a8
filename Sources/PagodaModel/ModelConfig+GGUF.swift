import Foundation

/// The model configuration a GGUF file's metadata describes, as the Hugging Face `config.json` it stands for.
///
/// `general.architecture` (A below) selects the HF `model_type`; the hyper-parameters are `A.*` keys:
///
/// | GGUF key | config.json field |
/// | --- | --- |
/// | `A.embedding_length` | `hidden_size` |
/// | `A.feed_forward_length` | `intermediate_size` |
/// | `A.expert_feed_forward_length` | `moe_intermediate_size` |
/// | `A.block_count` | `num_hidden_layers` |
/// | `A.attention.head_count`, `A.attention.head_count_kv` | `num_attention_heads`, `num_key_value_heads` |
/// | `A.attention.key_length` | `head_dim` (`A.attention.value_length` must equal it) |
/// | `A.attention.layer_norm_rms_epsilon` | `rms_norm_eps` |
/// | `A.rope.freq_base` | `rope_theta` |
/// | `A.rope.scaling.type`, `.factor`, `.original_context_length` | `rope_scaling` (`rope_type`, `factor`, `original_max_position_embeddings`) |
/// | `A.rope.dimension_count` | must equal the head width (partial RoPE is an error) |
/// | `A.context_length` | `max_position_embeddings` |
/// | `A.vocab_size`, else the length of `tokenizer.ggml.tokens` | `vocab_size` |
/// | `A.expert_count`, `A.expert_used_count` | `num_local_experts` (Mixtral) / `num_experts` (Qwen3-MoE), `num_experts_per_tok` |
/// | `A.attention.sliding_window` | `sliding_window` |
/// | no `output.weight` tensor | `tie_word_embeddings` |
/// | `tokenizer.ggml.bos_token_id`; `eos_token_id`, `eot_token_id`, `eom_token_id` | `bos_token_id`; `eos_token_id` (all ids that end generation, as llama.cpp's end-of-generation set) |
///
/// | `general.architecture` | model_type |
/// | --- | --- |
/// | `llama` (no experts), `mistral`, `qwen2`, `qwen3` | same |
/// | `llama` with `llama.expert_count` > 0 (how llama.cpp converts Mixtral) | `mixtral` |
/// | `qwen3moe` | `qwen3_moe` (`norm_topk_prob` true, as llama.cpp runs it) |
///
/// Anything else (`qwen2moe` with its shared expert, `gemma`, …) is `ModelLoadError.unsupportedGGUFArchitecture`;
/// a model split over several files (`split.count` > 1) is refused.
/// The dictionary then goes through `ModelConfig.decode` and `validate`, the path a config.json takes, so every field
/// check (`ConfigFieldSupport`, rope scaling, sliding window) applies to GGUF files too. A Llama 3.x file's RoPE
/// scaling, which llama.cpp's converter stores as a `rope_freqs.weight` tensor of per-frequency divisors, is read by
/// `ggufRopeFrequencyFactors`.
extension ModelConfig {
    public static let ggufArchitectures = ["llama", "mistral", "qwen2", "qwen3", "qwen3moe"]

    /// Reads and validates the config of a GGUF model (see the table above).
    public static func load(gguf file: GGUFFile, maxModelLen: Int? = nil) throws -> ModelConfig {
        let fields = try configFields(gguf: file)
        let data = try JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
        let config = try decode(data, path: file.path)
        try config.validate(path: file.path, maxModelLen: maxModelLen)
        return config
    }

    /// The per-frequency RoPE divisors of a GGUF file (`rope_freqs.weight`, headDim / 2 positive floats), or nil
    /// when it has none. A tensor of another length or with a value that is not a positive finite number is an
    /// error naming it.
    public static func ggufRopeFrequencyFactors(gguf file: GGUFFile, headDim: Int) throws -> [Float]? {
        guard let t = file.tensor("rope_freqs.weight") else { return nil }
        guard t.elementCount == headDim / 2 else {
            throw ModelLoadError.invalidGGUF(
                path: file.path, reason: "rope_freqs.weight has \(t.elementCount) elements, not \(headDim / 2) (head width \(headDim) / 2)")
        }
        let factors = try t.float32Values(path: file.path)
        if let bad = factors.firstIndex(where: { !($0.isFinite && $0 > 0) }) {
            throw ModelLoadError.invalidGGUF(
                path: file.path, reason: "rope_freqs.weight[\(bad)] = \(factors[bad]) is not a positive finite number")
        }
        return factors
    }

    /// The config.json fields a GGUF file's metadata stands for (before validation).
    public static func configFields(gguf file: GGUFFile) throws -> [String: Any] {
        let path = file.path
        let meta = file.metadata
        guard let arch = file.architecture else {
            throw ModelLoadError.invalidGGUF(path: path, reason: "no general.architecture string")
        }
        if let shards = meta["split.count"]?.int, shards > 1 {
            throw ModelLoadError.unsupportedConfigValue(
                path: path, field: "split.count", value: "\(shards)",
                reason: "split GGUF models are not read yet; merge the shards with llama-gguf-split --merge")
        }
        guard ggufArchitectures.contains(arch) else {
            throw ModelLoadError.unsupportedGGUFArchitecture(path: path, architecture: arch, supported: ggufArchitectures)
        }
        func int(_ key: String) throws -> Int? {
            guard let v = meta["\(arch).\(key)"] else { return nil }
            guard let i = v.int else {
                throw ModelLoadError.invalidConfig(path: path, reason: "\(arch).\(key) must be an integer, found \(v.type)")
            }
            return i
        }
        func required(_ key: String) throws -> Int {
            guard let i = try int(key) else { throw ModelLoadError.invalidConfig(path: path, reason: "missing \(arch).\(key)") }
            return i
        }
        func double(_ key: String) throws -> Double? {
            guard let v = meta["\(arch).\(key)"] else { return nil }
            guard let d = v.double else {
                throw ModelLoadError.invalidConfig(path: path, reason: "\(arch).\(key) must be a number, found \(v.type)")
            }
            return d
        }

        var f: [String: Any] = [:]
        let experts = try int("expert_count") ?? 0
        switch arch {
        case "llama": f["model_type"] = experts > 0 ? "mixtral" : "llama"
        case "qwen3moe": f["model_type"] = "qwen3_moe"
        default: f["model_type"] = arch
        }
        let hidden = try required("embedding_length")
        let heads = try required("attention.head_count")
        f["hidden_size"] = hidden
        f["num_hidden_layers"] = try required("block_count")
        f["num_attention_heads"] = heads
        if let kv = try int("attention.head_count_kv") { f["num_key_value_heads"] = kv }
        if let ff = try int("feed_forward_length") { f["intermediate_size"] = ff }
        var headDim = heads > 0 ? hidden / heads : 0
        if let k = try int("attention.key_length") {
            f["head_dim"] = k
            headDim = k
            if let v = try int("attention.value_length"), v != k {
                throw ModelLoadError.unsupportedConfigValue(
                    path: path, field: "\(arch).attention.value_length", value: "\(v)", reason: "differs from key_length \(k)")
            }
        }
        if let r = try int("rope.dimension_count"), r != headDim {
            throw ModelLoadError.unsupportedConfigValue(
                path: path, field: "\(arch).rope.dimension_count", value: "\(r)",
                reason: "partial RoPE: the head width is \(headDim)")
        }
        if let eps = try double("attention.layer_norm_rms_epsilon") { f["rms_norm_eps"] = eps }
        if let theta = try double("rope.freq_base") { f["rope_theta"] = theta }
        if let ctx = try int("context_length") { f["max_position_embeddings"] = ctx }
        if let window = try int("attention.sliding_window"), window > 0 { f["sliding_window"] = window }

        if let type = meta["\(arch).rope.scaling.type"]?.string, type != "none" {
            var scaling: [String: Any] = ["rope_type": type]
            if let factor = try double("rope.scaling.factor") { scaling["factor"] = factor }
            if let original = try int("rope.scaling.original_context_length") {
                scaling["original_max_position_embeddings"] = original
            }
            f["rope_scaling"] = scaling
        } else if let factor = try double("rope.scale_linear"), factor != 1 {
            f["rope_scaling"] = ["rope_type": "linear", "factor": factor]
        }

        if experts > 0 {
            f[arch == "llama" ? "num_local_experts" : "num_experts"] = experts
            if let used = try int("expert_used_count") { f["num_experts_per_tok"] = used }
            if let ff = try int("expert_feed_forward_length") { f["moe_intermediate_size"] = ff }
            if arch == "qwen3moe" { f["norm_topk_prob"] = true }
        }

        if let v = try int("vocab_size") {
            f["vocab_size"] = v
        } else if let tokens = meta["tokenizer.ggml.tokens"]?.array {
            f["vocab_size"] = tokens.count
        }
        f["tie_word_embeddings"] = file.tensor("output.weight") == nil

        if let bos = meta["tokenizer.ggml.bos_token_id"]?.int { f["bos_token_id"] = bos }
        var eos: [Int] = []
        for key in ["eos_token_id", "eot_token_id", "eom_token_id"] {
            if let id = meta["tokenizer.ggml.\(key)"]?.int, !eos.contains(id) { eos.append(id) }
        }
        if !eos.isEmpty { f["eos_token_id"] = eos.count == 1 ? eos[0] as Any : eos as Any }
        return f
    }
}
