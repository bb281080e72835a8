/// Opens the tokenizer folder the benchmark counts tokens with.
public enum BenchTokenizerLoader {
    public static func load(_ directory: String) throws -> BenchTokenizer {
        throw DatasetError("PagodaTokenizer's Tokenizer is not available in this build")
    }
}
