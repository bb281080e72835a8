import PagodaTokenizer

/// PagodaTokenizer's tokenizer already has the benchmark's requirements.
extension Tokenizer: BenchTokenizer {}

/// Opens the tokenizer folder the benchmark counts tokens with (`tokenizer.json` + `tokenizer_config.json`).
public enum BenchTokenizerLoader {
    public static func load(_ directory: String) throws -> BenchTokenizer {
        try Tokenizer(directory: directory)
    }
}
