import PagodaKernels

extension ModelConfig {
    /// Checks the fields the forward pass relies on, and that no field changes the maths in a way
    /// Pagoda does not implement (`ConfigFieldSupport`); `path` names the file in errors.
    ///
    /// `maxModelLen` is the longest context the model will run (`--max-model-len`); nil means
    /// `max_position_embeddings`, the limit the engine uses when no flag lowers it. It only matters
    /// for `sliding_window`: a window at least that long is full attention.
    ///
    /// Fields this struct does not model are checked only when it was decoded by `decode(_:path:)`
    /// (which keeps them in `rawFields`).
    public func validate(path: String, maxModelLen: Int? = nil) throws {
        guard ModelArchitecture.registry[modelType] != nil else {
            throw ModelLoadError.unsupportedArchitecture(
                path: path, modelType: modelType,
                supported: ModelArchitecture.registry.keys.sorted())
        }
        func positive(_ v: Int?, _ name: String) throws {
            guard let v, v > 0 else { throw ModelLoadError.invalidConfig(path: path, reason: "\(name) must be > 0") }
        }
        try positive(hiddenSize, "hidden_size")
        try positive(numHiddenLayers, "num_hidden_layers")
        try positive(numAttentionHeads, "num_attention_heads")
        try positive(resolvedNumKVHeads, "num_key_value_heads")
        try positive(vocabSize, "vocab_size")
        try positive(resolvedHeadDim, "head_dim")
        if resolvedHeadDim % 2 != 0 {
            throw ModelLoadError.invalidConfig(path: path, reason: "head_dim \(resolvedHeadDim) must be even for RoPE")
        }
        if numAttentionHeads % resolvedNumKVHeads != 0 {
            throw ModelLoadError.invalidConfig(
                path: path,
                reason: "num_attention_heads \(numAttentionHeads) is not a multiple of num_key_value_heads \(resolvedNumKVHeads)")
        }
        if resolvedNumExperts > 0 {
            try positive(numExpertsPerTok, "num_experts_per_tok")
            try positive(resolvedExpertIntermediateSize, "moe_intermediate_size / intermediate_size")
            if numExpertsPerTok! > resolvedNumExperts {
                throw ModelLoadError.invalidConfig(path: path, reason: "num_experts_per_tok exceeds the number of experts")
            }
        } else {
            try positive(intermediateSize, "intermediate_size")
        }
        if let maxModelLen { try positive(maxModelLen, "max model length") }
        try checkNeutralFields(path: path)
        _ = try ropeScalingKind(path: path)
        try checkSlidingWindow(path: path, context: maxModelLen ?? resolvedMaxPositionEmbeddings, fromFlag: maxModelLen != nil)
    }

    /// The value of a top-level field: as written when decoded by `decode`, else from the modelled fields.
    func value(of key: String) -> ConfigValue? {
        if let v = rawFields[key] { return v }
        switch key {
        case "hidden_act": return hiddenAct.map(ConfigValue.string)
        case "mlp_bias": return mlpBias.map(ConfigValue.bool)
        default: return nil
        }
    }

    /// Every `neutral` field of `ConfigFieldSupport` is absent, null or one of its neutral values.
    private func checkNeutralFields(path: String) throws {
        for field in ConfigFieldSupport.fields {
            guard let allowed = ConfigFieldSupport.neutralValues(field, modelType: modelType),
                let v = value(of: field.key), v != .null, !allowed.contains(v)
            else { continue }
            let expected = allowed.isEmpty ? "null" : allowed.map(\.description).joined(separator: " or ")
            throw ModelLoadError.unsupportedConfigValue(
                path: path, field: field.key, value: v.description,
                reason: "\(field.note) is not implemented for \(modelType) (supported: \(expected))")
        }
    }

    /// The rope scaling as a kernel parameter. `rope_scaling` (transformers 4) and `rope_parameters`
    /// (transformers 5) are both checked; the one that scales wins. Rope types other than default,
    /// linear and llama3 are errors naming `<object>.rope_type`.
    public func ropeScalingKind(path: String = "config.json") throws -> RotaryScalingKind {
        // transformers 5 keys rope parameters by layer type in hybrid models (Gemma 3).
        if let entries = rawFields["rope_parameters"]?.objectValue,
            let key = entries.keys.sorted().first(where: { entries[$0]?.objectValue != nil })
        {
            throw ModelLoadError.unsupportedConfigValue(
                path: path, field: "rope_parameters.\(key)", value: entries[key]!.description,
                reason: "rope parameters per layer type are not implemented")
        }
        if let p = ropeScaling {
            // transformers 4 requires a type here (it has no default).
            guard p.ropeType ?? p.type != nil else {
                throw ModelLoadError.unsupportedConfigValue(
                    path: path, field: "rope_scaling.rope_type", value: "null", reason: "rope_scaling needs a rope_type")
            }
        }
        let scaling = try ropeScaling.map { try $0.kind(field: "rope_scaling", path: path) } ?? RotaryScalingKind.none
        let parameters = try ropeParameters.map { try $0.kind(field: "rope_parameters", path: path) } ?? RotaryScalingKind.none
        return parameters != RotaryScalingKind.none ? parameters : scaling
    }

    /// Sliding-window attention is not implemented; a window is accepted only where the reference would
    /// not use it (no layer slides) or where it changes nothing: a query at position p attends keys
    /// p - window < j ≤ p, which is every key when window ≥ context.
    private func checkSlidingWindow(path: String, context: Int, fromFlag: Bool) throws {
        let rule = architecture.slidingWindow
        if let types = layerTypes {
            for (i, t) in types.enumerated() where t != "full_attention" && t != "sliding_attention" {
                throw ModelLoadError.unsupportedConfigValue(
                    path: path, field: "layer_types[\(i)]", value: "\"\(t)\"",
                    reason: "only full_attention and sliding_attention layers are implemented")
            }
        }
        let window: Int?
        switch rule {
        case .allLayers: window = slidingWindow
        case .qwen: window = useSlidingWindow == true ? slidingWindow : nil
        }
        guard let window, window < context else { return }
        let sliding: Int?
        if let types = layerTypes {
            // Only here does a count that differs from the layers' leave which layers slide undefined.
            if types.count != numHiddenLayers {
                throw ModelLoadError.invalidConfig(
                    path: path, reason: "layer_types has \(types.count) entries for \(numHiddenLayers) layers")
            }
            sliding = types.firstIndex(of: "sliding_attention")
        } else if rule == .qwen {
            let first = max(maxWindowLayers ?? 28, 0)
            sliding = first < numHiddenLayers ? first : nil
        } else {
            sliding = 0
        }
        guard let sliding else { return }
        let limit = fromFlag ? "the max model length \(context)" : "max_position_embeddings \(context)"
        throw ModelLoadError.unsupportedConfigValue(
            path: path, field: "sliding_window", value: "\(window)",
            reason: "sliding-window attention is not implemented and layer \(sliding) would slide within \(limit) (a window ≥ the context loads)")
    }
}

extension RopeParameters {
    /// This object's scaling as a kernel parameter; `field` ("rope_scaling" / "rope_parameters") names
    /// it in errors. No type means default (transformers 5 fills it in).
    func kind(field: String, path: String) throws -> RotaryScalingKind {
        if let f = partialRotaryFactor, f != 1 {
            throw ModelLoadError.unsupportedConfigValue(
                path: path, field: "\(field).partial_rotary_factor", value: "\(f)",
                reason: "RoPE on a fraction of each head is not implemented (supported: 1)")
        }
        let typeKey = ropeType != nil ? "rope_type" : "type"
        switch ropeType ?? type ?? "default" {
        case "default":
            return .none
        case "linear":
            guard let f = factor, f > 0 else {
                throw ModelLoadError.invalidConfig(path: path, reason: "\(field): linear rope scaling needs factor > 0")
            }
            return .linear(factor: f)
        case "llama3":
            guard let f = factor, let lo = lowFreqFactor, let hi = highFreqFactor, let orig = originalMaxPositionEmbeddings
            else {
                throw ModelLoadError.invalidConfig(
                    path: path,
                    reason: "\(field): llama3 rope scaling needs factor, low_freq_factor, high_freq_factor, original_max_position_embeddings")
            }
            return .llama3(factor: f, lowFreqFactor: lo, highFreqFactor: hi, originalMaxPositions: Double(orig))
        case let other:
            throw ModelLoadError.unsupportedConfigValue(
                path: path, field: "\(field).\(typeKey)", value: "\"\(other)\"",
                reason: "rope scaling of this type is not implemented (supported: default, linear, llama3)")
        }
    }
}
