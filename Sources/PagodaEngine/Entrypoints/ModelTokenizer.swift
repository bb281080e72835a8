import PagodaModel
import PagodaTokenizer

/// The tokenizer of a model path: a Hugging Face folder's `tokenizer.json` (and `tokenizer_config.json`), or
/// the `tokenizer.*` metadata of a GGUF file (or of the one GGUF file in a folder), chat template included.
/// This is where the model layer (GGUF reading) and the tokenizer layer meet.
public enum ModelTokenizer {
    public static func load(_ path: String) throws -> Tokenizer {
        guard let gguf = try GGUFFile.modelFile(at: path) else { return try Tokenizer(directory: path) }
        let file = try GGUFFile(path: gguf)
        return try Tokenizer(gguf: GGUFVocabulary(metadata: file.metadata.plainValues(prefix: "tokenizer."), path: gguf))
    }
}
