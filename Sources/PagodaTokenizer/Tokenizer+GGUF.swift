import Foundation

extension Tokenizer {
    /// The tokenizer a GGUF file's metadata describes, assembled from the same parts as a tokenizer.json pipeline:
    ///
    /// - `gpt2`: byte-level BPE with the file's merges; the pre-tokenizer named by `tokenizer.ggml.pre`
    ///   (`GGUFPreTokenizers`); ByteLevel decoder. A token spelled outside the byte-level alphabet (a raw space, say)
    ///   is respelled through it, as transformers' GGUF loader does.
    /// - `llama`: SentencePiece-style BPE with byte fallback (`<0xNN>` tokens) and unk; spaces become ▁ and, with
    ///   `add_space_prefix` (default true), every text piece gets a leading ▁ — the upstream Llama 2 tokenizer.json
    ///   normalizer (`Prepend`, `Replace`) and llama.cpp's behaviour; merges come from the file or, when it has none,
    ///   from the scores (every split of a token into two vocabulary tokens, best merged score first, as
    ///   transformers' `generate_merges`).
    ///
    /// Control tokens (`token_type` 3) and the bos/eos/unk/pad tokens are special added tokens, user-defined tokens
    /// (4) plain added tokens, all matched whole in the raw text. With `add_bos_token` (default: true for `llama`
    /// and for the Llama 3 pre-tokenizers) encoding with special tokens prepends BOS; `add_eos_token` appends EOS.
    /// The chat template is `config.defaultChatTemplate`.
    public convenience init(gguf v: GGUFVocabulary) throws {
        let path = v.path
        let n = v.tokens.count
        func check(_ id: Int?, _ key: String) throws {
            if let id, id < 0 || id >= n {
                throw TokenizerError.invalidField(path: path, field: "tokenizer.ggml.\(key)", reason: "id \(id) is outside the \(n) tokens")
            }
        }
        try check(v.bosTokenId, "bos_token_id")
        try check(v.eosTokenId, "eos_token_id")
        try check(v.unknownTokenId, "unknown_token_id")
        try check(v.paddingTokenId, "padding_token_id")
        if let s = v.scores, s.count != n {
            throw TokenizerError.invalidField(path: path, field: "tokenizer.ggml.scores", reason: "\(s.count) scores for \(n) tokens")
        }
        if let t = v.tokenTypes, t.count != n {
            throw TokenizerError.invalidField(path: path, field: "tokenizer.ggml.token_type", reason: "\(t.count) types for \(n) tokens")
        }

        let model: BPEModel
        let normalizer: Normalizer?
        let preTokenizer: PreTokenizer?
        let decoder: TokenDecoder
        var spelled = v.tokens
        var addBos: Bool
        switch v.model {
        case "gpt2":
            let alphabet = Set(ByteLevelAlphabet.byteToScalar)
            for (i, t) in spelled.enumerated() where !t.unicodeScalars.allSatisfy({ alphabet.contains($0) }) {
                var s = String.UnicodeScalarView()
                for b in t.utf8 { s.append(ByteLevelAlphabet.byteToScalar[Int(b)]) }
                spelled[i] = String(s)
            }
            let (pre, ignoreMerges) = try GGUFPreTokenizers.preTokenizer(named: v.preTokenizer, path: path)
            model = try BPEModel(
                vocab: Tokenizer.vocabulary(spelled), merges: try Tokenizer.splitMerges(v.merges ?? [], path: path),
                unkToken: nil, fuseUnk: false, byteFallback: false, ignoreMerges: ignoreMerges, continuingSubwordPrefix: nil,
                endOfWordSuffix: nil, path: path, field: "tokenizer.ggml")
            normalizer = nil
            preTokenizer = pre
            decoder = .byteLevel
            addBos = ignoreMerges  // llama.cpp's default for the Llama 3 family
        case "llama":
            let vocab = Tokenizer.vocabulary(spelled)
            let merges: [(String, String)]
            if let m = v.merges, !m.isEmpty {
                merges = try Tokenizer.splitMerges(m, path: path)
            } else {
                guard let scores = v.scores else {
                    throw TokenizerError.invalidField(path: path, field: "tokenizer.ggml.scores", reason: "missing (and no merges)")
                }
                merges = Tokenizer.mergesFromScores(tokens: v.tokens, scores: scores, vocab: vocab)
            }
            model = try BPEModel(
                vocab: vocab, merges: merges, unkToken: v.unknownTokenId.map { v.tokens[$0] }, fuseUnk: true, byteFallback: true,
                ignoreMerges: false, continuingSubwordPrefix: nil, endOfWordSuffix: nil, path: path, field: "tokenizer.ggml")
            let prefix = v.addSpacePrefix ?? true
            let replace = Normalizer.replace(try Tokenizer.literal(" ", path: path), "\u{2581}")
            normalizer = prefix ? .sequence([.prepend("\u{2581}"), replace]) : replace
            preTokenizer = nil
            var steps: [TokenDecoder] = [.replace(try Tokenizer.literal("\u{2581}", path: path), " "), .byteFallback, .fuse]
            if prefix { steps.append(.strip(content: " ", start: 1, stop: 0)) }
            decoder = .sequence(steps)
            addBos = true
        default:
            throw TokenizerError.unsupportedComponent(path: path, field: "tokenizer.ggml.model", type: v.model)
        }
        addBos = v.addBosToken ?? addBos
        let addEos = v.addEosToken ?? false

        // Added tokens in id order: control and the named specials (special), user-defined (plain).
        let specialIds = Set([v.bosTokenId, v.eosTokenId, v.unknownTokenId, v.paddingTokenId].compactMap { $0 })
        var added: [AddedToken] = []
        for (id, token) in v.tokens.enumerated() {
            let type = v.type(of: id)
            // In a byte-level vocabulary a "control" token spelled outside the alphabet is a mislabeled normal token.
            let control = (type == .control && spelled[id] == token) || specialIds.contains(id)
            // User-defined tokens are matched as written, even where the vocabulary respells them (GPT-NeoX's runs of
            // spaces), as llama.cpp does; transformers 5.24 drops the respelled ones.
            guard control || type == .userDefined, !token.isEmpty else { continue }
            added.append(
                AddedToken(id: id, content: token, special: control, lstrip: false, rstrip: false, normalized: false, singleWord: false))
        }

        var post: [PostProcessor.TemplatePiece] = []
        if addBos, let b = v.bosTokenId { post.append(.special([b])) }
        post.append(.sequence)
        if addEos, let e = v.eosTokenId { post.append(.special([e])) }
        var templates = v.namedChatTemplates
        if let t = v.chatTemplate { templates["default"] = t }
        let config = TokenizerConfig(
            bosToken: v.bosTokenId.map { v.tokens[$0] }, eosToken: v.eosTokenId.map { v.tokens[$0] },
            padToken: v.paddingTokenId.map { v.tokens[$0] }, unkToken: v.unknownTokenId.map { v.tokens[$0] },
            addBosToken: addBos, addEosToken: addEos, chatTemplates: templates)
        self.init(
            model: model, normalizer: normalizer, preTokenizer: preTokenizer, postProcessor: .template(post), decoder: decoder,
            addedTokens: added, config: config)
    }

    /// A pattern matching `s` literally (tokenizer.json's `{"String": s}`).
    static func literal(_ s: String, path: String) throws -> SplitRegex {
        try SplitRegex(patternObject: JSONObject(["String": s], path: path))
    }

    /// token -> id; a token listed twice keeps its last id (as a Python dict built in id order).
    static func vocabulary(_ tokens: [String]) -> [ExactString: Int] {
        var vocab: [ExactString: Int] = [:]
        vocab.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() { vocab[ExactString(t)] = i }
        return vocab
    }

    /// "left right" strings as pairs, cut at the first space.
    static func splitMerges(_ merges: [String], path: String) throws -> [(String, String)] {
        var out: [(String, String)] = []
        out.reserveCapacity(merges.count)
        for (rank, m) in merges.enumerated() {
            guard let sp = m.firstIndex(of: " ") else {
                throw TokenizerError.invalidField(path: path, field: "tokenizer.ggml.merges[\(rank)]", reason: "expected \"left right\"")
            }
            out.append((String(m[..<sp]), String(m[m.index(after: sp)...])))
        }
        return out
    }

    /// BPE merges implied by a SentencePiece vocabulary: for each token (first occurrence order), every split into two
    /// vocabulary tokens, ordered by the merged token's score (highest first), then the longer left part, then the
    /// longer right part, then token order and the parts' ids — transformers' `generate_merges` with scores.
    static func mergesFromScores(tokens: [String], scores: [Double], vocab: [ExactString: Int]) -> [(String, String)] {
        struct Candidate {
            var left: String, right: String, score: Double, leftLength: Int, rightLength: Int, order: Int
        }
        var scoreOf: [ExactString: Double] = [:]
        var firstOrder: [String] = []
        for (i, t) in tokens.enumerated() {
            let key = ExactString(t)
            if scoreOf[key] == nil { firstOrder.append(t) }
            scoreOf[key] = scores[i]
        }
        var candidates: [Candidate] = []
        for token in firstOrder {
            let scalars = Array(token.unicodeScalars)
            guard scalars.count > 1 else { continue }
            var local: [(String, String, Int, Int)] = []
            for cut in 1..<scalars.count {
                let l = String(String.UnicodeScalarView(scalars[..<cut]))
                let r = String(String.UnicodeScalarView(scalars[cut...]))
                if let il = vocab[ExactString(l)], let ir = vocab[ExactString(r)] { local.append((l, r, il, ir)) }
            }
            local.sort { ($0.2, $0.3) < ($1.2, $1.3) }
            let score = scoreOf[ExactString(token)] ?? 0
            for (l, r, _, _) in local {
                candidates.append(
                    Candidate(
                        left: l, right: r, score: score, leftLength: l.unicodeScalars.count, rightLength: r.unicodeScalars.count,
                        order: candidates.count))
            }
        }
        candidates.sort {
            if $0.score != $1.score { return $0.score > $1.score }
            if $0.leftLength != $1.leftLength { return $0.leftLength > $1.leftLength }
            if $0.rightLength != $1.rightLength { return $0.rightLength > $1.rightLength }
            return $0.order < $1.order
        }
        return candidates.map { ($0.left, $0.right) }
    }
}
