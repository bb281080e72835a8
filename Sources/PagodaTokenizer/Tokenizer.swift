import Foundation

/// A Hugging Face tokenizer loaded from a model folder (tokenizer.json, tokenizer_config.json,
/// special_tokens_map.json): the same ids and text as the `tokenizers` library. Thread-safe; share one instance.
///
/// encode: split out added tokens (raw text) -> normalize each remaining piece -> split out normalized added
/// tokens -> pre-tokenize into words -> model (BPE) per word -> post-process (BOS etc.) if asked.
/// decode: ids -> token strings (added tokens first) -> decoder chain -> joined.
public final class Tokenizer: @unchecked Sendable {
    public let config: TokenizerConfig
    /// Added tokens from tokenizer.json, in file order.
    public let addedTokens: [AddedToken]

    private let model: BPEModel
    private let normalizer: Normalizer?
    private let preTokenizer: PreTokenizer?
    private let postProcessor: PostProcessor?
    let decoder: TokenDecoder?
    private let rawMatcher: AddedTokenMatcher
    private let normalizedMatcher: AddedTokenMatcher
    let addedById: [Int: AddedToken]
    private let addedByContent: [ExactString: Int]
    private let specialIds: Set<Int>
    private let totalVocabSize: Int
    /// Set when the pre-tokenizer is "split with this regex (Isolated), then ByteLevel without its own regex or
    /// prefix space" (GPT-2, Llama 3, Qwen2): words then go straight from the input's UTF-8 to the model.
    private let byteLevelSplitter: SplitRegex?

    /// Loads `directory`/tokenizer.json (required) and the configs next to it.
    public convenience init(directory: String) throws {
        let path = (directory as NSString).appendingPathComponent("tokenizer.json")
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw TokenizerError.fileNotFound(path: directory)
        }
        try self.init(tokenizerJSON: path, config: try TokenizerConfig(directory: directory))
    }

    /// Loads a tokenizer.json file with a given config.
    public convenience init(tokenizerJSON path: String, config: TokenizerConfig = TokenizerConfig()) throws {
        let json = try JSONObject.load(path: path, exactKeys: ["vocab"])
        let modelJSON = try json.object("model")
        let type = try modelJSON.optionalString("type") ?? (modelJSON.dict["merges"] != nil ? "BPE" : "")
        let model: BPEModel
        switch type {
        case "BPE": model = try BPEModel(json: modelJSON)
        case "WordPiece", "Unigram", "WordLevel":
            throw TokenizerError.unsupportedComponent(path: path, field: "model.type", type: type)
        default: throw TokenizerError.unknownModelType(path: path, type: type)
        }
        let normalizer = try json.optionalObject("normalizer").map { try Normalizer(json: $0) }
        let preTokenizer = try json.optionalObject("pre_tokenizer").map { try PreTokenizer(json: $0) }
        let postProcessor = try json.optionalObject("post_processor").map { try PostProcessor(json: $0) }
        let decoder = try json.optionalObject("decoder").map { try TokenDecoder(json: $0) }

        var added: [AddedToken] = []
        if !json.isNull("added_tokens") {
            for t in try json.objects("added_tokens") {
                added.append(
                    AddedToken(
                        id: try t.int("id"), content: try t.string("content"), special: try t.bool("special", default: false),
                        lstrip: try t.bool("lstrip", default: false), rstrip: try t.bool("rstrip", default: false),
                        normalized: try t.bool("normalized", default: false), singleWord: try t.bool("single_word", default: false)))
            }
        }
        self.init(
            model: model, normalizer: normalizer, preTokenizer: preTokenizer, postProcessor: postProcessor, decoder: decoder,
            addedTokens: added, config: config)
    }

    /// A tokenizer from its pipeline's parts (tokenizer.json or GGUF metadata, `Tokenizer+GGUF`).
    init(
        model: BPEModel, normalizer: Normalizer?, preTokenizer: PreTokenizer?, postProcessor: PostProcessor?,
        decoder: TokenDecoder?, addedTokens added: [AddedToken], config: TokenizerConfig
    ) {
        self.config = config
        self.model = model
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.postProcessor = postProcessor
        self.decoder = decoder
        addedTokens = added
        var byId: [Int: AddedToken] = [:]
        var byContent: [ExactString: Int] = [:]
        for t in added {
            byId[t.id] = t
            byContent[ExactString(t.content)] = t.id
        }
        addedById = byId
        addedByContent = byContent
        specialIds = Set(added.filter { $0.special }.map { $0.id })
        let rawTokens = added.filter { !$0.normalized }
        let normTokens = added.filter { $0.normalized }
        rawMatcher = AddedTokenMatcher(tokens: rawTokens, contents: rawTokens.map { $0.content })
        let norm = normalizer
        normalizedMatcher = AddedTokenMatcher(
            tokens: normTokens, contents: normTokens.map { norm?.normalize($0.content) ?? $0.content })
        switch preTokenizer {
        case .byteLevel(addPrefixSpace: false, useRegex: true)? where model.supportsByteLevelWords:
            byteLevelSplitter = PreTokenizer.gpt2Regex
        case .sequence(let list)? where model.supportsByteLevelWords && list.count == 2:
            if case .split(let re, .isolated, invert: false) = list[0], case .byteLevel(addPrefixSpace: false, useRegex: false) = list[1] {
                byteLevelSplitter = re
            } else {
                byteLevelSplitter = nil
            }
        default: byteLevelSplitter = nil
        }
        totalVocabSize = max(model.idToToken.count, (added.map { $0.id }.max() ?? -1) + 1)
    }

    /// Number of ids, added tokens included (highest id + 1).
    public var vocabSize: Int { totalVocabSize }

    public var bosTokenId: Int? { config.bosToken.flatMap { tokenToId($0) } }
    public var eosTokenId: Int? { config.eosToken.flatMap { tokenToId($0) } }
    public var padTokenId: Int? { config.padToken.flatMap { tokenToId($0) } }

    public func idToToken(_ id: Int) -> String? {
        if let t = addedById[id] { return t.content }
        guard id >= 0 && id < model.idToToken.count else { return nil }
        return model.idToToken[id]
    }

    public func tokenToId(_ token: String) -> Int? {
        let key = ExactString(token)
        return addedByContent[key] ?? model.vocab[key]
    }

    /// Whether `id` is an added token marked `special` (what `skip_special_tokens` drops).
    public func isSpecial(_ id: Int) -> Bool { specialIds.contains(id) }

    /// Token ids of `text`; with `addSpecialTokens` the post-processor adds BOS/EOS as the file says.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        var ids: [Int] = []
        let scalars = Array(text.unicodeScalars)
        ids.reserveCapacity(scalars.count / 3 + 4)
        for piece in rawMatcher.split(scalars) {
            if let id = piece.id {
                ids.append(id)
                continue
            }
            let atStart = piece.range.lowerBound == 0
            var text = Array(scalars[piece.range])
            if let n = normalizer {
                text = Array(n.normalize(String(String.UnicodeScalarView(text))).unicodeScalars)
            }
            if normalizedMatcher.isEmpty {
                encodeWords(PreToken(scalars: text, atStart: atStart), into: &ids)
                continue
            }
            for p in normalizedMatcher.split(text) {
                if let id = p.id {
                    ids.append(id)
                } else {
                    encodeWords(PreToken(scalars: Array(text[p.range]), atStart: atStart && p.range.lowerBound == 0), into: &ids)
                }
            }
        }
        if addSpecialTokens, let pp = postProcessor { ids = pp.process(ids) }
        return ids
    }

    /// Pre-tokenizes one normalized piece and runs the model on each word.
    private func encodeWords(_ piece: PreToken, into ids: inout [Int]) {
        if piece.scalars.isEmpty { return }
        if let splitter = byteLevelSplitter {
            encodeByteLevelWords(piece.scalars, splitter: splitter, into: &ids)
            return
        }
        guard let pre = preTokenizer else {
            model.tokenize(piece.scalars, into: &ids)
            return
        }
        for w in pre.preTokenize([piece]) { model.tokenize(w.scalars, into: &ids) }
    }

    /// The byte-level fast path: every match and every gap between matches (Isolated) is one word.
    private func encodeByteLevelWords(_ s: [Unicode.Scalar], splitter: SplitRegex, into ids: inout [Int]) {
        var buf = [UInt8](repeating: 0, count: 64)
        func word(_ r: Range<Int>) {
            if r.isEmpty { return }
            if buf.count < r.count * 4 { buf = [UInt8](repeating: 0, count: r.count * 4) }
            buf.withUnsafeMutableBufferPointer { b in
                var n = 0
                for i in r {
                    let v = s[i].value
                    if v < 0x80 {
                        b[n] = UInt8(v); n += 1
                    } else if v < 0x800 {
                        b[n] = UInt8(0xC0 | (v >> 6)); b[n + 1] = UInt8(0x80 | (v & 0x3F)); n += 2
                    } else if v < 0x10000 {
                        b[n] = UInt8(0xE0 | (v >> 12)); b[n + 1] = UInt8(0x80 | ((v >> 6) & 0x3F))
                        b[n + 2] = UInt8(0x80 | (v & 0x3F)); n += 3
                    } else {
                        b[n] = UInt8(0xF0 | (v >> 18)); b[n + 1] = UInt8(0x80 | ((v >> 12) & 0x3F))
                        b[n + 2] = UInt8(0x80 | ((v >> 6) & 0x3F)); b[n + 3] = UInt8(0x80 | (v & 0x3F)); n += 4
                    }
                }
                model.tokenizeByteLevel(UnsafeBufferPointer(rebasing: b[0..<n]), into: &ids)
            }
        }
        var last = 0
        for m in splitter.matches(s) {
            word(last..<m.lowerBound)
            word(m)
            last = m.upperBound
        }
        word(last..<s.count)
    }

    /// Text of `ids`, as `tokenizers`' decode (unknown ids are left out; no clean-up of spaces, as transformers 5).
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        var tokens: [String] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            if skipSpecialTokens && specialIds.contains(id) { continue }
            if let t = idToToken(id) { tokens.append(t) }
        }
        guard let d = decoder else { return tokens.joined(separator: " ") }
        return d.decodeChain(tokens).joined()
    }
}
