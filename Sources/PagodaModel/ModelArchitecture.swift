/// What distinguishes one member of the Llama family from another, as data: flags the one decoder layer
/// reads and the tensor names of its checkpoint. Registered by `config.json`'s `model_type`.
public struct ModelArchitecture: Sendable {
    /// How a mixture-of-experts block names its router and experts.
    public enum ExpertNaming: Sendable {
        /// Mixtral: `block_sparse_moe.gate`, `block_sparse_moe.experts.N.{w1,w3,w2}` (gate, up, down).
        case mixtral
        /// Qwen MoE: `mlp.gate`, `mlp.experts.N.{gate_proj,up_proj,down_proj}`.
        case qwen
    }

    /// Which layers `sliding_window` applies to in the reference (Pagoda implements no sliding
    /// window; `ModelConfig.validate` rejects one that would change the result).
    public enum SlidingWindowRule: Sendable {
        /// Every layer when `sliding_window` is non-null (Mistral, Mixtral; Llama's reference ignores the
        /// field, Pagoda treats it as Mistral's rather than guess).
        case allLayers
        /// Only when `use_sliding_window` is true, and only layers ≥ `max_window_layers` (default 28)
        /// (Qwen2, Qwen3, Qwen3-MoE).
        case qwen
    }

    public var modelType: String
    /// q/k/v always carry a bias (Qwen2), whatever `attention_bias` says.
    public var alwaysQKVBias: Bool
    /// Per-head RMSNorm of q and k before RoPE (Qwen3).
    public var qkNorm: Bool
    public var expertNaming: ExpertNaming
    /// The router's top-k weights are renormalized to sum 1 regardless of `norm_topk_prob` (Mixtral).
    public var alwaysRenormalizeTopK: Bool
    public var slidingWindow: SlidingWindowRule = .allLayers

    public static let registry: [String: ModelArchitecture] = {
        var r: [String: ModelArchitecture] = [:]
        for a in [
            ModelArchitecture(modelType: "llama", alwaysQKVBias: false, qkNorm: false, expertNaming: .qwen, alwaysRenormalizeTopK: false),
            ModelArchitecture(modelType: "mistral", alwaysQKVBias: false, qkNorm: false, expertNaming: .qwen, alwaysRenormalizeTopK: false),
            ModelArchitecture(
                modelType: "qwen2", alwaysQKVBias: true, qkNorm: false, expertNaming: .qwen, alwaysRenormalizeTopK: false,
                slidingWindow: .qwen),
            ModelArchitecture(
                modelType: "qwen3", alwaysQKVBias: false, qkNorm: true, expertNaming: .qwen, alwaysRenormalizeTopK: false,
                slidingWindow: .qwen),
            ModelArchitecture(modelType: "mixtral", alwaysQKVBias: false, qkNorm: false, expertNaming: .mixtral, alwaysRenormalizeTopK: true),
            ModelArchitecture(
                modelType: "qwen3_moe", alwaysQKVBias: false, qkNorm: true, expertNaming: .qwen, alwaysRenormalizeTopK: false,
                slidingWindow: .qwen),
        ] {
            r[a.modelType] = a
        }
        return r
    }()

    /// Tensor name of expert `e`'s gate, up and down projections in layer prefix `p` ("model.layers.3").
    func expertNames(_ p: String, _ e: Int) -> (gate: String, up: String, down: String) {
        switch expertNaming {
        case .mixtral:
            let b = "\(p).block_sparse_moe.experts.\(e)"
            return ("\(b).w1.weight", "\(b).w3.weight", "\(b).w2.weight")
        case .qwen:
            let b = "\(p).mlp.experts.\(e)"
            return ("\(b).gate_proj.weight", "\(b).up_proj.weight", "\(b).down_proj.weight")
        }
    }

    func routerName(_ p: String) -> String {
        expertNaming == .mixtral ? "\(p).block_sparse_moe.gate.weight" : "\(p).mlp.gate.weight"
    }
}
