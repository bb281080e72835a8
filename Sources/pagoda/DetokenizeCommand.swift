import ArgumentParser
import Foundation
import PagodaTokenizer

/// `pagoda detokenize`: Turn token ids back into text (printed as is, without a trailing newline added).
struct DetokenizeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "detokenize", abstract: "Turn token ids back into text.")

    @Argument(help: "Model or tokenizer folder (tokenizer.json, tokenizer_config.json).")
    var directory: String

    @Option(help: "Comma-separated token ids, e.g. 1,2,3.")
    var ids: String

    @Flag(help: "Leave out special tokens (BOS, EOS, chat markers).")
    var skipSpecialTokens = false

    func parsedIds() throws -> [Int] {
        let parts = ids.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        if parts == [""] { return [] }
        return try parts.map { p in
            guard let v = Int(p), v >= 0 else { throw ValidationError("--ids: \"\(p)\" is not a token id") }
            return v
        }
    }

    func validate() throws { _ = try parsedIds() }

    func run() async throws {
        let tokenizer: Tokenizer
        do {
            tokenizer = try Tokenizer(directory: directory)
        } catch {
            throw TokenizerCLIError("\(error)")
        }
        let list = try parsedIds()
        if let bad = list.first(where: { $0 >= tokenizer.vocabSize }) {
            throw TokenizerCLIError("--ids: \(bad) is out of range (vocabulary size \(tokenizer.vocabSize))")
        }
        print(tokenizer.decode(list, skipSpecialTokens: skipSpecialTokens))
    }
}
