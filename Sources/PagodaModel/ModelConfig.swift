import Foundation
import PagodaKernels

/// A Hugging Face `config.json` for the Llama family (llama, mistral, qwen2, qwen3, mixtral, qwen3_moe),
/// decoded with snake_case keys. Optional fields are resolved by the computed properties below, which is
/// where per-architecture defaults live (e.g. qwen2 always has q/k/v bias).
public struct ModelConfig: Codable, Sendable {
    public var modelType: String
    public var architectures: [String]?
    public var hiddenSize: Int
    public var intermediateSize: Int?
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int?
    public var headDim: Int?
    public var vocabSize: Int
    public var rmsNormEps: Double?
    public var ropeTheta: Double?
    /// transformers 4 style (`rope_type` or legacy `type`).
    public var ropeScaling: RopeParameters?
    /// transformers 5 style: theta and scaling in one object.
    public var ropeParameters: RopeParameters?
    public var maxPositionEmbeddings: Int?
    public var tieWordEmbeddings: Bool?
    public var attentionBias: Bool?
    public var mlpBias: Bool?
    public var hiddenAct: String?
    public var numLocalExperts: Int?
    public var numExperts: Int?
    public var numExpertsPerTok: Int?
    public var normTopkProb: Bool?
    public var moeIntermediateSize: Int?
    public var decoderSparseStep: Int?
    public var mlpOnlyLayers: [Int]?
    public var slidingWindow: Int?
    /// Qwen: whether `sliding_window` applies at all, and from which layer.
    public var useSlidingWindow: Bool?
    public var maxWindowLayers: Int?
    /// transformers ≥ 4.53: "full_attention" / "sliding_attention" per layer.
    public var layerTypes: [String]?
    public var bosTokenId: TokenIdList?
    public var eosTokenId: TokenIdList?
    /// Every top-level field of the file as written (empty unless decoded by `decode(_:path:)`), for
    /// the checks of the fields this struct does not model (`ConfigFieldSupport`).
    public var rawFields: [String: ConfigValue] = [:]

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", architectures, hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size", numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads", numKeyValueHeads = "num_key_value_heads"
        case headDim = "head_dim", vocabSize = "vocab_size", rmsNormEps = "rms_norm_eps", ropeTheta = "rope_theta"
        case ropeScaling = "rope_scaling", ropeParameters = "rope_parameters"
        case maxPositionEmbeddings = "max_position_embeddings", tieWordEmbeddings = "tie_word_embeddings"
        case attentionBias = "attention_bias", mlpBias = "mlp_bias", hiddenAct = "hidden_act"
        case numLocalExperts = "num_local_experts", numExperts = "num_experts"
        case numExpertsPerTok = "num_experts_per_tok", normTopkProb = "norm_topk_prob"
        case moeIntermediateSize = "moe_intermediate_size", decoderSparseStep = "decoder_sparse_step"
        case mlpOnlyLayers = "mlp_only_layers", slidingWindow = "sliding_window"
        case useSlidingWindow = "use_sliding_window", maxWindowLayers = "max_window_layers", layerTypes = "layer_types"
        case bosTokenId = "bos_token_id", eosTokenId = "eos_token_id"
    }

    /// Reads and validates `directory/config.json`. `maxModelLen` is the context the server will use
    /// (`--max-model-len`); nil means `max_position_embeddings` (see `validate`).
    public static func load(directory: String, maxModelLen: Int? = nil) throws -> ModelConfig {
        let path = (directory as NSString).appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelLoadError.fileNotFound(path: path)
        }
        let config = try decode(data, path: path)
        try config.validate(path: path, maxModelLen: maxModelLen)
        return config
    }

    /// Decodes config.json's bytes, keeping every field in `rawFields`; `path` names the file in errors.
    public static func decode(_ data: Data, path: String) throws -> ModelConfig {
        do {
            var config = try JSONDecoder().decode(ModelConfig.self, from: data)
            config.rawFields = try JSONDecoder().decode([String: ConfigValue].self, from: data)
            return config
        } catch {
            throw ModelLoadError.invalidConfig(path: path, reason: ModelConfig.describe(error))
        }
    }

    // MARK: Resolved values

    public var architecture: ModelArchitecture { ModelArchitecture.registry[modelType]! }
    public var resolvedNumKVHeads: Int { numKeyValueHeads ?? numAttentionHeads }
    public var resolvedHeadDim: Int { headDim ?? hiddenSize / max(numAttentionHeads, 1) }
    public var resolvedRmsNormEps: Float { Float(rmsNormEps ?? 1e-6) }
    public var resolvedTieWordEmbeddings: Bool { tieWordEmbeddings ?? false }
    /// q/k/v projections carry a bias (qwen2 always; llama/mistral when `attention_bias`).
    public var resolvedAttentionBias: Bool { architecture.alwaysQKVBias || (attentionBias ?? false) }
    public var resolvedNumExperts: Int { numLocalExperts ?? numExperts ?? 0 }
    public var resolvedExpertIntermediateSize: Int { moeIntermediateSize ?? intermediateSize ?? 0 }
    public var resolvedRopeTheta: Double { ropeParameters?.ropeTheta ?? ropeTheta ?? 10000 }
    /// The model's context limit (`max_position_embeddings`; 2048 when the config has none).
    public var resolvedMaxPositionEmbeddings: Int { maxPositionEmbeddings ?? 2048 }
    public var eosTokenIds: [Int] { eosTokenId?.ids ?? [] }

    /// Whether layer `i` uses the mixture of experts (qwen3_moe's decoder_sparse_step / mlp_only_layers).
    public func isMoELayer(_ i: Int) -> Bool {
        guard resolvedNumExperts > 0 else { return false }
        if let only = mlpOnlyLayers, only.contains(i) { return false }
        let step = max(decoderSparseStep ?? 1, 1)
        return (i + 1) % step == 0
    }

    static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let ctx):
            return "missing field \(([key] + ctx.codingPath.reversed()).reversed().map(\.stringValue).joined(separator: "."))"
        case DecodingError.typeMismatch(_, let ctx), DecodingError.valueNotFound(_, let ctx):
            return "bad value for \(ctx.codingPath.map(\.stringValue).joined(separator: ".")): \(ctx.debugDescription)"
        case DecodingError.dataCorrupted(let ctx):
            return "not valid JSON: \(ctx.debugDescription)"
        default:
            return "\(error)"
        }
    }
}

public typealias RotaryScalingKind = RotaryEmbedding.Scaling

/// `rope_scaling` (transformers 4) or `rope_parameters` (transformers 5).
public struct RopeParameters: Codable, Sendable {
    public var ropeType: String?
    public var type: String?
    public var ropeTheta: Double?
    public var factor: Double?
    public var lowFreqFactor: Double?
    public var highFreqFactor: Double?
    public var originalMaxPositionEmbeddings: Int?
    /// transformers 5 may keep it here rather than at the top level; only 1 is supported.
    public var partialRotaryFactor: Double?

    enum CodingKeys: String, CodingKey {
        case ropeType = "rope_type", type, ropeTheta = "rope_theta", factor, partialRotaryFactor = "partial_rotary_factor"
        case lowFreqFactor = "low_freq_factor", highFreqFactor = "high_freq_factor"
        case originalMaxPositionEmbeddings = "original_max_position_embeddings"
    }
}

/// A token id field that config files write as one integer or a list (`eos_token_id`).
public struct TokenIdList: Codable, Sendable, Equatable {
    public var ids: [Int]

    public init(_ ids: [Int]) { self.ids = ids }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            ids = []
        } else if let one = try? c.decode(Int.self) {
            ids = [one]
        } else {
            ids = try c.decode([Int].self)
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        if ids.count == 1 { try c.encode(ids[0]) } else { try c.encode(ids) }
    }
}
