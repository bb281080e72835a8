import PagodaEngine
import PagodaTokenizer

/// PagodaTokenizer's tokenizer already has the benchmark's requirements.
extension Tokenizer: BenchTokenizer {}

/// Opens the tokenizer the benchmark counts tokens with: a folder's `tokenizer.json` + `tokenizer_config.json`, or
/// a GGUF file's `tokenizer.*` metadata (the same `ModelTokenizer` the server uses).
public enum BenchTokenizerLoader {
    public static func load(_ path: String) throws -> BenchTokenizer {
        try ModelTokenizer.load(path)
    }
}
