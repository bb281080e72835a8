/// Tensor names and row order of llama.cpp's GGUF files against the Hugging Face checkpoints that `WeightStore`,
/// `DecoderLayer` and `CausalLM` read.
///
/// | GGUF | Hugging Face |
/// | --- | --- |
/// | `token_embd.weight` | `model.embed_tokens.weight` |
/// | `output_norm.weight` | `model.norm.weight` |
/// | `output.weight` (absent when tied) | `lm_head.weight` |
/// | `blk.N.attn_norm.weight` | `model.layers.N.input_layernorm.weight` |
/// | `blk.N.attn_q/attn_k/attn_v/attn_output.{weight,bias}` | `….self_attn.{q,k,v,o}_proj.{weight,bias}` |
/// | `blk.N.attn_q_norm/attn_k_norm.weight` (Qwen3) | `….self_attn.{q,k}_norm.weight` |
/// | `blk.N.ffn_norm.weight` | `….post_attention_layernorm.weight` |
/// | `blk.N.ffn_gate/ffn_up/ffn_down.weight` | `….mlp.{gate,up,down}_proj.weight` |
/// | `blk.N.ffn_gate_inp.weight` (MoE router) | `….block_sparse_moe.gate.weight` (Mixtral), `….mlp.gate.weight` (Qwen) |
/// | `blk.N.ffn_{gate,up,down}_exps.weight`, all experts stacked | per expert `e`: `….experts.e.{w1,w3,w2}` (Mixtral), `….experts.e.{gate,up,down}_proj` (Qwen) |
///
/// Shapes are the same matrices: GGUF lists `ne` innermost first, so `GGUFTensor.shape` (reversed) is the HF shape.
/// A stacked expert tensor has `ne = [cols, rows, experts]`; expert `e` is rows `GGUFTensor.expertRows(e)` of it.
///
/// **Q/K row permutation.** For `llama` and `mistral` (Mixtral included: it is converted as `llama`) llama.cpp's
/// `convert_hf_to_gguf.py` reorders the rows of `q_proj` and `k_proj` (weight and bias) so its interleaved ("normal")
/// RoPE, which rotates pairs (2i, 2i+1), computes what Hugging Face's rotate-half RoPE computes on pairs
/// (i, i + d/2). Per head of width d (q: `num_attention_heads` heads; k: `num_key_value_heads`):
///
///     GGUF row  h·d + 2i + s   holds   HF row  h·d + s·d/2 + i        (0 ≤ i < d/2, s ∈ {0, 1})
///
/// (the converter's `permute`: reshape to [heads, 2, d/2, cols], swap axes 1 and 2, reshape back). To load a GGUF
/// q/k matrix in HF layout, take HF row r from GGUF row `ggufRow(forHFRow: r, headDim: d)`; rows are whole blocks,
/// so this works on quantized data too (`GGUFTensor.row`). Qwen2/Qwen3 files are not permuted (llama.cpp runs them
/// with NEOX RoPE, the HF order): see `hasPermutedQK`.
public enum GGUFTensorNames {
    /// Whether `general.architecture` `arch` stores q/k rows permuted for interleaved RoPE.
    public static func hasPermutedQK(architecture arch: String) -> Bool { arch == "llama" || arch == "mistral" }

    /// The GGUF row holding HF row `hfRow` of a permuted q/k projection with heads of `headDim` rows.
    public static func ggufRow(forHFRow hfRow: Int, headDim d: Int) -> Int {
        let (h, j) = hfRow.quotientAndRemainder(dividingBy: d)
        let (s, i) = j.quotientAndRemainder(dividingBy: d / 2)
        return h * d + 2 * i + s
    }

    /// The inverse: the HF row that GGUF row `ggufRow` holds.
    public static func hfRow(forGGUFRow ggufRow: Int, headDim d: Int) -> Int {
        let (h, j) = ggufRow.quotientAndRemainder(dividingBy: d)
        let (i, s) = j.quotientAndRemainder(dividingBy: 2)
        return h * d + s * (d / 2) + i
    }

    /// For each HF row of a permuted q/k projection of `rows` rows, the GGUF row holding it: read row
    /// `order[r]` of the GGUF tensor as HF row `r` (`rows` a multiple of `headDim`).
    public static func hfRowOrder(rows: Int, headDim: Int) -> [Int] {
        (0..<rows).map { ggufRow(forHFRow: $0, headDim: headDim) }
    }

    /// Per-layer suffixes (after `blk.N.`) that map one to one, with their HF suffix (after `model.layers.N.`).
    static let layerSuffixes: [(gguf: String, hf: String)] = [
        ("attn_norm", "input_layernorm"),
        ("ffn_norm", "post_attention_layernorm"),
        ("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"), ("attn_v", "self_attn.v_proj"),
        ("attn_output", "self_attn.o_proj"),
        ("attn_q_norm", "self_attn.q_norm"), ("attn_k_norm", "self_attn.k_norm"),
        ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"), ("ffn_down", "mlp.down_proj"),
    ]
    static let globalNames: [(gguf: String, hf: String)] = [
        ("token_embd.weight", "model.embed_tokens.weight"), ("output_norm.weight", "model.norm.weight"),
        ("output.weight", "lm_head.weight"),
    ]
    /// Stacked expert tensors: GGUF stem and which projection (0 gate, 1 up, 2 down).
    static let expertStems: [(stem: String, projection: Int)] = [("ffn_gate_exps", 0), ("ffn_up_exps", 1), ("ffn_down_exps", 2)]

    /// Splits `blk.N.rest` into (N, rest).
    private static func splitLayer(_ name: String) -> (Int, Substring)? {
        guard name.hasPrefix("blk.") else { return nil }
        let rest = name.dropFirst(4)
        guard let dot = rest.firstIndex(of: "."), let n = Int(rest[..<dot]), n >= 0 else { return nil }
        return (n, rest[rest.index(after: dot)...])
    }

    /// Splits `stem.weight` / `stem.bias`.
    private static func splitKind(_ s: Substring) -> (Substring, String)? {
        for kind in ["weight", "bias"] where s.hasSuffix("." + kind) { return (s.dropLast(kind.count + 1), kind) }
        return nil
    }

    private static func architecture(_ modelType: String) -> ModelArchitecture {
        ModelArchitecture.registry[modelType] ?? ModelArchitecture.registry["llama"]!
    }

    /// The HF name of GGUF tensor `name` for HF `model_type` `modelType`; nil for stacked experts
    /// (`hfExpertName`) and names outside the table (e.g. `rope_freqs.weight`).
    public static func hfName(_ name: String, modelType: String) -> String? {
        if let g = globalNames.first(where: { $0.gguf == name }) { return g.hf }
        guard let (n, rest) = splitLayer(name), let (stem, kind) = splitKind(rest) else { return nil }
        let p = "model.layers.\(n)"
        if stem == "ffn_gate_inp", kind == "weight" { return architecture(modelType).routerName(p) }
        guard let s = layerSuffixes.first(where: { $0.gguf == stem }) else { return nil }
        return "\(p).\(s.hf).\(kind)"
    }

    /// The HF name of expert `expert` of the stacked GGUF tensor `name` (`blk.N.ffn_{gate,up,down}_exps.weight`).
    public static func hfExpertName(_ name: String, expert: Int, modelType: String) -> String? {
        guard let (n, rest) = splitLayer(name), let (stem, kind) = splitKind(rest), kind == "weight",
            let e = expertStems.first(where: { $0.stem == stem })
        else { return nil }
        let names = architecture(modelType).expertNames("model.layers.\(n)", expert)
        return [names.gate, names.up, names.down][e.projection]
    }

    /// The GGUF tensor holding HF tensor `hfName`, and the expert index when it is one expert of a stacked tensor.
    /// This is the lookup a loader that asks for HF names (as `DecoderLayer` does) needs.
    public static func ggufName(forHF hfName: String, modelType: String) -> (name: String, expert: Int?)? {
        if let g = globalNames.first(where: { $0.hf == hfName }) { return (g.gguf, nil) }
        let prefix = "model.layers."
        guard hfName.hasPrefix(prefix) else { return nil }
        let rest = hfName.dropFirst(prefix.count)
        guard let dot = rest.firstIndex(of: "."), let n = Int(rest[..<dot]), n >= 0 else { return nil }
        let p = "model.layers.\(n)"
        let arch = architecture(modelType)
        if hfName == arch.routerName(p) { return ("blk.\(n).ffn_gate_inp.weight", nil) }
        let tail = rest[rest.index(after: dot)...]
        if let (stem, kind) = splitKind(tail), let s = layerSuffixes.first(where: { $0.hf == stem }) {
            return ("blk.\(n).\(s.gguf).\(kind)", nil)
        }
        // "….experts.E.<projection>.weight": find E, then match the whole name against the architecture's names.
        guard let range = tail.range(of: "experts.") else { return nil }
        let afterExperts = tail[range.upperBound...]
        guard let eDot = afterExperts.firstIndex(of: "."), let e = Int(afterExperts[..<eDot]), e >= 0 else { return nil }
        let names = arch.expertNames(p, e)
        for (i, candidate) in [names.gate, names.up, names.down].enumerated() where candidate == hfName {
            return ("blk.\(n).\(expertStems[i].stem).weight", e)
        }
        return nil
    }
}

extension GGUFFile {
    /// The tensor holding HF tensor `hfName` (`GGUFTensorNames.ggufName(forHF:modelType:)`), with the expert index
    /// for one expert of a stacked tensor; nil when the file has no such tensor.
    public func tensor(forHF hfName: String, modelType: String) -> (tensor: GGUFTensor, expert: Int?)? {
        guard let (name, expert) = GGUFTensorNames.ggufName(forHF: hfName, modelType: modelType), let t = tensor(name) else {
            return nil
        }
        return (t, expert)
    }
}

extension GGUFTensor {
    /// Rows of expert `e` in a stacked expert tensor (`ne = [cols, rows, experts]`), as indices for `row(_:)`.
    public func expertRows(_ e: Int) -> Range<Int> {
        precondition(dimensions.count == 3 && e >= 0 && e < dimensions[2], "\(name) has no expert \(e)")
        return (e * dimensions[1])..<((e + 1) * dimensions[1])
    }
}
