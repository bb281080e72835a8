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
/// | `starcoder`, `refact`, `command-r`, `smollm`, `codeshell`, `exaone`, `minerva-7b` | every digit alone, then GPT-2's regex |
/// | `falcon` | punctuation runs, GPT-2's regex, then three-digit groups |
/// | `deepseek-llm`, `deepseek-coder`, `deepseek-v3` | DeepSeek's regex lists |
/// | `tekken` (Mistral NeMo) | Tekken's case-aware regex |
/// | `gpt-4o`, `llama4` | GPT-4o's case-aware regex |
/// | `poro-chat`, `bloom`, `gpt3-finnish`, `viking` | split on whitespace and sentence punctuation (viking: digits alone too) |
///
/// Where they differ, this follows llama.cpp rather than transformers' GGUF loader: the Llama 3 family uses
/// `ignore_merges` (a word already in the vocabulary is one token; transformers 5.24 leaves it off), and a missing
/// or `default` name is GPT-2's regex as in transformers (llama.cpp falls back to a punctuation-splitting variant
/// and warns that quality will suffer).
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
    static let tekken =
        #"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let gpt4o =
        #"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let cjk = "[一-龥ࠀ-一가-퟿]+"
    static let sentencePunctuation = #" ?[^(\s|.,!?…。，、।۔،)]+"#
    static let deepseekLLMLetters =
        #"\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+"#

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
        add(["starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"],
            Entry(splits: [], individualDigits: true))
        add(["falcon"], Entry(splits: [#"[\p{P}\$\+<=>\^~\|`]+"#, gpt2, "[0-9][0-9][0-9]"]))
        add(["deepseek-llm"], Entry(splits: ["[\r\n]", deepseekLLMLetters, #"\s?[!-/:-~！-／：-～‘-‟　-。]+"#, #"\s+$"#, cjk, #"\p{N}+"#]))
        add(["deepseek-coder"], Entry(splits: ["[\r\n]", #"\s?\p{L}+"#, #"\s?\p{P}+"#, cjk, #"\p{N}"#]))
        add(
            ["deepseek-v3"],
            Entry(splits: [
                #"\p{N}{1,3}"#, "[一-龥぀-ゟ゠-ヿ]+",
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
