import Foundation
import PagodaOpenAI
import PagodaTokenizer

@testable import PagodaServer

/// A tokenizer double: token id = Unicode scalar value; id 0 is a special token ("<eos>") that
/// `skipSpecialTokens` drops. Chat rendering joins "role: content" lines.
final class CharTokenizer: ServingTokenizer, @unchecked Sendable {
    var vocabSize: Int { 0x11_0000 }

    func encode(_ text: String, addSpecialTokens: Bool) -> [Int] { text.unicodeScalars.map { Int($0.value) } }

    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        ids.compactMap { id -> String? in
            if id == 0 { return skipSpecialTokens ? nil : "<eos>" }
            return Unicode.Scalar(UInt32(id)).map { String(Character($0)) } ?? "\u{FFFD}"
        }.joined()
    }

    func tokenText(_ id: Int) -> String { decode([id], skipSpecialTokens: false) }

    func makeDetokenizer(skipSpecialTokens: Bool, promptTokenIds: [Int]) -> any StreamingDetokenizer {
        Detok(tokenizer: self, skip: skipSpecialTokens)
    }

    func renderChat(_ chat: ChatRenderRequest) throws -> String {
        var s = ""
        for m in chat.messages {
            s += "\(m["role"]?.stringValue ?? "?"): \(m["content"]?.stringValue ?? "")\n"
        }
        if chat.addGenerationPrompt { s += "assistant:" }
        return s
    }

    func chatTemplateContentFormat(template: String?, hasTools: Bool) throws -> ChatTemplateContentFormat { .string }

    final class Detok: StreamingDetokenizer {
        let tokenizer: CharTokenizer
        let skip: Bool
        init(tokenizer: CharTokenizer, skip: Bool) { self.tokenizer = tokenizer; self.skip = skip }
        func add(_ id: Int) -> String { tokenizer.decode([id], skipSpecialTokens: skip) }
        func finish() -> String { "" }
    }
}
