/// The `config.json` fields that change the forward pass's maths and what Pagoda does with each, so
/// that no such field is parsed and silently ignored: a field is either implemented (honoured for
/// every value `ModelConfig.validate` accepts) or accepted only at the values that leave the maths as
/// Pagoda computes it — anything else is a load error naming the field
/// (`ModelLoadError.unsupportedConfigValue`).
///
/// The list covers the Hugging Face config classes of the registered architectures (LlamaConfig,
/// MistralConfig, Qwen2Config, Qwen3Config, MixtralConfig, Qwen3MoeConfig) and the fields of
/// neighbouring classes that a converted or hand-edited config may carry (Gemma's soft-capping,
/// Granite's multipliers, partial rotary, shared experts, quantization). Fields that do not change
/// inference are not listed and are ignored: initializer_range, attention_dropout (training only),
/// use_cache, pad/bos/eos_token_id (read elsewhere), output_router_logits, router_aux_loss_coef,
/// router_jitter_noise (training only), torch_dtype/dtype (the weights' dtype is read from the
/// safetensors), transformers_version, architectures, pretraining_tp (Llama's split of each matmul
/// into slices summed back: the same product). Unknown fields are ignored too: configs carry free
/// metadata; a newly found maths-changing field joins this table.
public enum ConfigFieldSupport {
    /// What Pagoda does with one field.
    public enum Rule: Sendable {
        /// Honoured by the forward pass (`ModelConfig`'s resolved values, `DecoderLayer`).
        case implemented
        /// Honoured within limits that `ModelConfig.validate` checks with its own code (the note says
        /// which); values outside them are errors naming the field.
        case checked
        /// Not implemented: absent, `null` or one of these values loads (the ones under which the
        /// reference computes what Pagoda computes); any other value is an error naming the field.
        /// `perArchitecture` replaces the list for the named `model_type`s.
        case neutral([ConfigValue], perArchitecture: [String: [ConfigValue]] = [:])
    }

    /// One row of the table.
    public struct Field: Sendable {
        public var key: String
        public var rule: Rule
        /// What the field does in the reference, and why the rule is what it is.
        public var note: String
    }

    private static let one = ConfigValue.number(1), zero = ConfigValue.number(0)
    private static let no = ConfigValue.bool(false), yes = ConfigValue.bool(true)

    public static let fields: [Field] = [
        // Implemented: the forward pass reads them.
        Field(key: "head_dim", rule: .implemented, note: "per-head width (default hidden_size / num_attention_heads)"),
        Field(key: "num_key_value_heads", rule: .implemented, note: "grouped-query attention"),
        Field(key: "rms_norm_eps", rule: .implemented, note: "every RMSNorm, q/k norms included"),
        Field(key: "rope_theta", rule: .implemented, note: "RoPE base (also rope_parameters.rope_theta)"),
        Field(key: "tie_word_embeddings", rule: .implemented, note: "LM head is the embedding"),
        Field(key: "attention_bias", rule: .implemented, note: "q/k/v bias (qwen2 always); o_proj bias when the checkpoint has it"),
        Field(key: "num_local_experts", rule: .implemented, note: "Mixtral experts"),
        Field(key: "num_experts", rule: .implemented, note: "Qwen3-MoE experts"),
        Field(key: "num_experts_per_tok", rule: .implemented, note: "top-k of the router (TopKRouting)"),
        Field(key: "norm_topk_prob", rule: .implemented, note: "renormalize top-k weights (Mixtral always)"),
        Field(key: "moe_intermediate_size", rule: .implemented, note: "expert width"),
        Field(key: "decoder_sparse_step", rule: .implemented, note: "which layers are MoE"),
        Field(key: "mlp_only_layers", rule: .implemented, note: "layers kept dense"),
        // Checked by ModelConfig.validate's own code.
        Field(
            key: "rope_scaling", rule: .checked,
            note: "rope_type (or type) default, linear or llama3; others (dynamic, yarn, longrope, su, ...) are errors"),
        Field(
            key: "rope_parameters", rule: .checked,
            note: "transformers 5 form of rope_theta + rope_scaling; same rope types; per-layer-type parameters are errors"),
        Field(
            key: "sliding_window", rule: .checked,
            note: "loads only where no layer slides or the window covers the whole context (then it is full attention)"),
        Field(key: "use_sliding_window", rule: .checked, note: "Qwen: the window applies only when true"),
        Field(key: "max_window_layers", rule: .checked, note: "Qwen: layers from this index on slide"),
        Field(key: "layer_types", rule: .checked, note: "full_attention / sliding_attention per layer; other types are errors"),
        // Not implemented: only the neutral values load.
        Field(key: "hidden_act", rule: .neutral([.string("silu"), .string("swish")]), note: "the MLP's activation"),
        Field(key: "hidden_activation", rule: .neutral([.string("silu"), .string("swish")]), note: "Gemma's name for hidden_act"),
        Field(key: "mlp_bias", rule: .neutral([no]), note: "bias on gate/up/down_proj (Llama)"),
        Field(key: "bias", rule: .neutral([no]), note: "vLLM's Llama reads it as attention_bias"),
        Field(key: "partial_rotary_factor", rule: .neutral([one]), note: "RoPE on a fraction of each head"),
        Field(key: "rotary_pct", rule: .neutral([one]), note: "GPT-NeoX name for partial_rotary_factor"),
        Field(key: "no_rope_layers", rule: .neutral([]), note: "layers without RoPE (SmolLM3)"),
        Field(key: "attn_logit_softcapping", rule: .neutral([]), note: "tanh soft-capping of attention scores (Gemma 2)"),
        Field(key: "final_logit_softcapping", rule: .neutral([]), note: "tanh soft-capping of the logits (Gemma 2)"),
        Field(key: "query_pre_attn_scalar", rule: .neutral([]), note: "attention scale other than 1/sqrt(head_dim) (Gemma 2)"),
        Field(key: "attention_multiplier", rule: .neutral([one]), note: "attention scale (Granite)"),
        Field(key: "embedding_multiplier", rule: .neutral([one]), note: "embedding scale (Granite)"),
        Field(key: "residual_multiplier", rule: .neutral([one]), note: "residual scale (Granite)"),
        Field(key: "logits_scaling", rule: .neutral([one]), note: "logits divisor (Granite)"),
        Field(key: "clip_qkv", rule: .neutral([]), note: "clamping of q/k/v (OLMo)"),
        Field(
            key: "use_qk_norm", rule: .neutral([no], perArchitecture: ["qwen3": [yes, no], "qwen3_moe": [yes, no]]),
            note: "per-head q/k RMSNorm: Qwen3 always has it (whatever the flag), the others never"),
        Field(
            key: "qk_layernorm", rule: .neutral([no], perArchitecture: ["qwen3": [yes, no], "qwen3_moe": [yes, no]]),
            note: "another name for use_qk_norm"),
        Field(key: "attention_chunk_size", rule: .neutral([]), note: "chunked local attention (Llama 4)"),
        Field(key: "sliding_window_pattern", rule: .neutral([]), note: "every n-th layer global (Gemma 3)"),
        Field(key: "use_bidirectional_attention", rule: .neutral([no]), note: "non-causal attention"),
        Field(key: "shared_expert_intermediate_size", rule: .neutral([zero]), note: "a shared expert beside the routed ones"),
        Field(key: "n_shared_experts", rule: .neutral([zero]), note: "shared experts (DeepSeek)"),
        Field(key: "routed_scaling_factor", rule: .neutral([one]), note: "scale of the routed experts' sum"),
        Field(key: "scoring_func", rule: .neutral([.string("softmax")]), note: "router scores other than softmax"),
        Field(key: "topk_method", rule: .neutral([.string("greedy")]), note: "grouped top-k routing"),
        Field(key: "n_group", rule: .neutral([one]), note: "expert groups of grouped top-k"),
        Field(key: "topk_group", rule: .neutral([one]), note: "groups kept by grouped top-k"),
        Field(key: "first_k_dense_replace", rule: .neutral([zero]), note: "leading dense layers of a MoE model"),
        Field(key: "moe_layer_freq", rule: .neutral([one]), note: "MoE every n-th layer"),
        Field(key: "quantization_config", rule: .neutral([]), note: "quantized checkpoints"),
    ]

    /// The values of `field` that load for `modelType` (absent and `null` always do); nil when the rule
    /// is not `neutral`.
    static func neutralValues(_ field: Field, modelType: String) -> [ConfigValue]? {
        guard case .neutral(let values, let perArchitecture) = field.rule else { return nil }
        return perArchitecture[modelType] ?? values
    }
}
