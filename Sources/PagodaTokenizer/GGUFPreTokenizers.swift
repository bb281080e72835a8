/// The pre-tokenizers of byte-level BPE vocabularies by `tokenizer.ggml.pre` name. A GGUF file names the family
/// of regexes its merges were learned with instead of storing them, so this table has to exist here (elsewhere
/// Pagoda reads the regexes from tokenizer.json). Names and regexes are llama.cpp's (`llama-vocab.cpp`), which
/// follow the upstream tokenizer.json files; llama.cpp applies its list of regexes one after another, each
/// splitting the pieces of the previous one (unmatched text kept as pieces), which is a `Sequence` of `Split`
/// (`Isolated`) pre-tokenizers followed by the byte-level mapping.
///
/// | names | splitting |
/// | --- | --- |
/// | `default`, `gpt-2`, `gpt2`, `mpt`, `olmo`, `phi-2`, `jais`, … (or no key) | GPT-2's regex (ByteLevel's own) |
/// | `llama3`, `llama-v3`, `llama-bpe`, `falcon3`, `pixtral`, `dbrx`, `smaug-bpe`, `chatglm-bpe`, … | Llama 3's regex (digits in runs of ≤ 3) |
/// | `qwen2`, `deepseek-r1-qwen`, `megrez`, `stablelm2` | Qwen2's regex (single digits) |
/// | `qwen35` | Qwen2's regex keeping combining marks in words |
/// | `starcoder`, `refact`, `command-r`, `smollm`, `codeshell`, `exaone`, `minerva-7b` | every digit alone, then GPT-2's regex |
/// | `falcon` | punctuation runs, GPT-2's regex, then three-digit groups |
/// | `deepseek-llm`, `deepseek-coder`, `deepseek-v3` | DeepSeek's regex lists |
/// | `tekken` (Mistral NeMo) | Tekken's case-aware regex |
/// | `gpt-4o`, `llama4` | GPT-4o's case-aware regex |
/// | `poro-chat`, `bloom`, `gpt3-finnish`, `viking` | split on whitespace and sentence punctuation (viking: digits alone too) |
///
/// Where they differ, this follows llama.cpp (and the models' own tokenizer.json) rather than transformers' GGUF
/// loader (5.24): the Llama 3 family uses `ignore_merges` (a word already in the vocabulary is one token), and the
/// StarCoder/SmolLM family cuts every numeral alone first — transformers applies GPT-2's regex alone there, which
/// differs on numerals that are not ASCII digits ("½", "①"). A missing or `default` name is GPT-2's regex as in
/// transformers (llama.cpp falls back to a punctuation-splitting variant and warns that quality will suffer).
/// Checked against llama.cpp's `ggml-vocab-*.gguf` test vectors (PagodaEngineTests/GGUFTokenizerTests).
enum GGUFPreTokenizers {
    struct Entry {
        /// Regexes applied in order before the byte-level mapping; empty means ByteLevel's own GPT-2 regex.
        var splits: [String]
        /// Digits split one by one first (the `\p{N}` step of the StarCoder family).
        var individualDigits = false
        /// BPE `ignore_merges` (llama.cpp sets it for the Llama 3 family).
        var ignoreMerges = false
    }

    static let gpt2 = TiktokenScanner.gpt2Pattern
    static let llama3 = TiktokenScanner.llama3Pattern
    static let qwen2 = TiktokenScanner.qwen2Pattern
    /// Qwen3.5: Qwen2's with combining marks kept in words.
    static let qwen35 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let tekken =
        #"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let gpt4o =
        #"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    // Non-ASCII characters are written as ICU escapes: a source file can be NFC-normalized on the way (U+1FD3 ΐ,
    // U+2126 Ω, U+212A K change), which would turn the ranges below into different, even invalid, ones.
    static let cjk = #"[\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+"#
    static let sentencePunctuation = #" ?[^(\s|.,!?\x{2026}\x{3002}\x{FF0C}\x{3001}\x{964}\x{6D4}\x{60C})]+"#
    static let deepseekLLMLetters =
        #"\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+"#

    static let table: [String: Entry] = {
        var t: [String: Entry] = [:]
        func add(_ names: [String], _ e: Entry) { for n in names { t[n] = e } }
        add(
            ["default", "gpt-2", "gpt2", "mpt", "olmo", "phi-2", "jais", "roberta-bpe", "jina-es", "jina-de", "jina-v1-en",
             "jina-v2-es", "jina-v2-de", "jina-v2-code", "gigachat", "trillion"],
            Entry(splits: []))
        add(["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"],
            Entry(splits: [llama3], ignoreMerges: true))
        add(["dbrx", "smaug-bpe", "chatglm-bpe"], Entry(splits: [llama3]))
        add(["qwen2", "deepseek-r1-qwen", "megrez", "stablelm2"], Entry(splits: [qwen2]))
        add(["qwen35"], Entry(splits: [qwen35]))
        add(["starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"],
            Entry(splits: [], individualDigits: true))
        add(["falcon"], Entry(splits: [#"[\p{P}\$\+<=>\^~\|`]+"#, gpt2, "[0-9][0-9][0-9]"]))
        add(["deepseek-llm"], Entry(splits: ["[\r\n]", deepseekLLMLetters, #"\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+"#, #"\s+$"#, cjk, #"\p{N}+"#]))
        add(["deepseek-coder"], Entry(splits: ["[\r\n]", #"\s?\p{L}+"#, #"\s?\p{P}+"#, cjk, #"\p{N}"#]))
        add(
            ["deepseek-v3"],
            Entry(splits: [
                #"\p{N}{1,3}"#, #"[\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+"#,
                ##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##,
            ]))
        add(["tekken"], Entry(splits: [tekken]))
        add(["gpt-4o", "llama4"], Entry(splits: [gpt4o]))
        add(["poro-chat", "bloom", "gpt3-finnish"], Entry(splits: [sentencePunctuation]))
        add(["viking"], Entry(splits: [sentencePunctuation, #"\p{N}"#]))
        return t
    }()

    /// The pre-tokenizer for `name` (nil: the file has no `tokenizer.ggml.pre`), or an error naming it.
    static func preTokenizer(named name: String?, path: String) throws -> (PreTokenizer, ignoreMerges: Bool) {
        guard let entry = table[name ?? "default"] else {
            throw TokenizerError.unsupportedComponent(path: path, field: "tokenizer.ggml.pre", type: name ?? "")
        }
        if entry.splits.isEmpty {
            let byteLevel = PreTokenizer.byteLevel(addPrefixSpace: false, useRegex: true)
            return (entry.individualDigits ? .sequence([.digits(individual: true), byteLevel]) : byteLevel, entry.ignoreMerges)
        }
        var list: [PreTokenizer] = []
        for re in entry.splits {
            list.append(.split(try SplitRegex(regex: re, path: path, field: "tokenizer.ggml.pre"), .isolated, invert: false))
        }
        list.append(.byteLevel(addPrefixSpace: false, useRegex: false))
        return (.sequence(list), entry.ignoreMerges)
    }
}
