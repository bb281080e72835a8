import Logging
import PagodaOpenAI

/// What the server does with request fields that the endpoint's wire type does not declare: the
/// fields OpenAI or vLLM define with an effect Pagoda does not implement are a 400 naming the
/// field (unless the value is a no-op by definition), OpenAI's pure metadata is accepted, and any
/// other name is accepted with a logged warning, as vLLM does (`"The following fields were present
/// in the request but ignored"`), so clients that send extra fields keep working.
enum UndeclaredRequestFields {
    /// How one known field is treated.
    enum Rule {
        /// Has no effect on the output in OpenAI either; accepted and not used.
        case metadata
        /// Not implemented: a 400 unless `isNoOp` says the value asks for nothing.
        case unsupported(isNoOp: (JSONValue) -> Bool)
        /// Read by the endpoint itself (e.g. `StructuredOutputRequest`).
        case handled
    }

    /// Accepted only as `null` (any other value asks for the feature).
    static let onlyNull: (JSONValue) -> Bool = { _ in false }
    static func only(_ value: JSONValue) -> (JSONValue) -> Bool { { $0 == value } }

    /// The known fields of `/v1/completions` and `/v1/chat/completions` that their wire types
    /// leave out. A field in neither the type nor this table is unknown.
    static let rules: [String: Rule] = handledRules.merging(unhandledRules) { a, _ in a }

    static let handledRules: [String: Rule] = Dictionary(uniqueKeysWithValues: StructuredOutputRequest.fields.map { ($0, Rule.handled) })

    static let unhandledRules: [String: Rule] = [
        // OpenAI metadata: stored-completion tags, storage, billing tier. None changes the tokens.
        "metadata": .metadata, "store": .metadata, "service_tier": .metadata,
        // Only affects tool calls, which Pagoda never produces (tool_choice other than "none" is a 400).
        "parallel_tool_calls": .metadata,
        "functions": .unsupported(isNoOp: onlyNull), "function_call": .unsupported(isNoOp: only(.string("none"))),
        "modalities": .unsupported(isNoOp: only(.array([.string("text")]))),
        "audio": .unsupported(isNoOp: onlyNull),
        "prediction": .unsupported(isNoOp: onlyNull),
        "reasoning_effort": .unsupported(isNoOp: onlyNull),
        "web_search_options": .unsupported(isNoOp: onlyNull),
        // Chat declares it (`ChatCompletionRequest.includeReasoning`); completions have no reasoning split.
        "include_reasoning": .metadata,
        // vLLM's extras.
        "use_beam_search": .unsupported(isNoOp: only(.bool(false))),
        "length_penalty": .unsupported(isNoOp: only(.number(1))),
        "allowed_token_ids": .unsupported(isNoOp: onlyNull),
        "bad_words": .unsupported(isNoOp: only(.array([]))),
        "spaces_between_special_tokens": .unsupported(isNoOp: only(.bool(true))),
        "guided_whitespace_pattern": .unsupported(isNoOp: onlyNull),
        "structural_tag": .unsupported(isNoOp: onlyNull),
        "logits_processors": .unsupported(isNoOp: onlyNull),
        "priority": .unsupported(isNoOp: only(.number(0))),
        "return_tokens_as_token_ids": .unsupported(isNoOp: only(.bool(false))),
        "return_token_ids": .unsupported(isNoOp: only(.bool(false))),
        "cache_salt": .unsupported(isNoOp: onlyNull),
        "prompt_embeds": .unsupported(isNoOp: onlyNull),
        // "kv_transfer_params" is read by `OpenAIServing.kvTransferParams` (prefill/decode disaggregation).
        "kv_transfer_params": .metadata,
        "vllm_xargs": .unsupported(isNoOp: onlyNull),
        "mm_processor_kwargs": .unsupported(isNoOp: onlyNull),
        // Chat's `echo` (prepend the last message); completions declare their own `echo`.
        "echo": .unsupported(isNoOp: only(.bool(false))),
    ]

    /// Throws a 400 for the first unsupported field (in name order, so the answer is stable) whose
    /// value asks for something; returns the names of unknown fields.
    static func check(_ fields: [String: JSONValue]) throws -> [String] {
        var unknown: [String] = []
        for name in fields.keys.sorted() {
            let value = fields[name]!
            switch rules[name] {
            case .metadata?, .handled?: continue
            case .unsupported(let isNoOp)?:
                if value == .null || isNoOp(value) { continue }
                throw OpenAIError.badRequest("\(name) is not supported yet", param: name)
            case nil: unknown.append(name)
            }
        }
        return unknown
    }
}

extension OpenAIServing {
    /// `UndeclaredRequestFields.check`, logging the unknown fields as vLLM does.
    func checkUndeclaredFields(_ fields: [String: JSONValue], known: Bool = true) throws {
        guard !fields.isEmpty else { return }
        let unknown = try known ? UndeclaredRequestFields.check(fields) : fields.keys.sorted()
        if !unknown.isEmpty {
            logger.warning("The following fields were present in the request but ignored: \(unknown.joined(separator: ", "))")
        }
    }
}
