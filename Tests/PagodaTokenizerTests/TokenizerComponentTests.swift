import Foundation
import XCTest

@testable import PagodaTokenizer

/// Pipeline components against outputs of Hugging Face `tokenizers` 0.23.3 (recorded in the comments' cases).
final class TokenizerComponentTests: XCTestCase {
    func pre(_ json: String, _ text: String) throws -> [String] {
        let obj = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
        let p = try PreTokenizer(json: JSONObject(obj, path: "test"))
        return p.preTokenize([PreToken(scalars: Array(text.unicodeScalars), atStart: true)]).map {
            String(String.UnicodeScalarView($0.scalars))
        }
    }

    func dec(_ json: String, _ tokens: [String]) throws -> String {
        let obj = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
        return try TokenDecoder(json: JSONObject(obj, path: "test")).decodeChain(tokens).joined()
    }

    func testSplitBehaviors() throws {
        let text = "  a  b c "
        func split(_ b: String, _ invert: Bool) throws -> [String] {
            try pre(#"{"type": "Split", "pattern": {"String": " "}, "behavior": "\#(b)", "invert": \#(invert)}"#, text)
        }
        XCTAssertEqual(try split("Removed", false), ["a", "b", "c"])
        XCTAssertEqual(try split("Removed", true), [" ", " ", " ", " ", " ", " "])
        XCTAssertEqual(try split("Isolated", false), [" ", " ", "a", " ", " ", "b", " ", "c", " "])
        XCTAssertEqual(try split("MergedWithPrevious", false), [" ", " ", "a ", " ", "b ", "c "])
        XCTAssertEqual(try split("MergedWithPrevious", true), [" ", " a", " ", " b", " c", " "])
        XCTAssertEqual(try split("MergedWithNext", false), [" ", " a", " ", " b", " c", " "])
        XCTAssertEqual(try split("MergedWithNext", true), [" ", " ", "a ", " ", "b ", "c "])
        XCTAssertEqual(try split("Contiguous", false), ["  ", "a", "  ", "b", " ", "c", " "])
    }

    func testOtherPreTokenizers() throws {
        XCTAssertEqual(try pre(#"{"type": "ByteLevel", "add_prefix_space": true, "use_regex": true}"#, "hi there"), ["Ġhi", "Ġthere"])
        XCTAssertEqual(try pre(#"{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true}"#, "hi  there"), ["▁hi", "▁", "▁there"])
        XCTAssertEqual(try pre(#"{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false}"#, "hi  there"), ["▁hi▁▁there"])
        XCTAssertEqual(
            try pre(#"{"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first"}]}"#, "hi  there"),
            ["▁hi", "there"])
        XCTAssertEqual(try pre(#"{"type": "Whitespace"}"#, "hi, there_x! 12"), ["hi", ",", "there_x", "!", "12"])
        XCTAssertEqual(try pre(#"{"type": "Punctuation", "behavior": "Isolated"}"#, "hi,, there!"), ["hi", ",", ",", " there", "!"])
        XCTAssertEqual(try pre(#"{"type": "Digits", "individual_digits": false}"#, "a123b4"), ["a", "123", "b", "4"])
        XCTAssertEqual(try pre(#"{"type": "Digits", "individual_digits": true}"#, "a12"), ["a", "1", "2"])
    }

    func testDecoders() throws {
        XCTAssertEqual(try dec(#"{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always"}"#, ["▁a▁b", "▁c"]), "ab c")
        XCTAssertEqual(try dec(#"{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never"}"#, ["▁Hey", "▁"]), " Hey ")
        XCTAssertEqual(try dec(#"{"type": "Strip", "content": " ", "start": 1, "stop": 0}"#, ["  a ", " b"]), " a b")
        XCTAssertEqual(try dec(#"{"type": "ByteFallback"}"#, ["<0xE4>", "<0xBD>", "a", "<0xE4>", "<0xBD>", "<0xA0>", "<0x41>"]), "\u{FFFD}\u{FFFD}a你A")
        XCTAssertEqual(try dec(###"{"type": "WordPiece", "prefix": "##", "cleanup": true}"###, ["hel", "\u{23}\u{23}lo", "world", ".", "do", "n't"]), "hello world. don't")
    }

    /// The BPE merge loop on a long word (one 20k-scalar word without a pre-tokenizer) finishes quickly and
    /// round-trips: the heap keeps it O(n log n).
    func testLongWordIsNotQuadratic() throws {
        let tok = try Conformance.tokenizer("llama2")
        let text = String(repeating: "abcdefghij", count: 2000)
        let start = Date()
        let ids = tok.encode(text, addSpecialTokens: false)
        XCTAssertLessThan(Date().timeIntervalSince(start), 5.0)
        XCTAssertEqual(tok.decode(ids), text)
    }

    func testAddedTokensSplitOut() throws {
        let phi3 = try Conformance.tokenizer("phi3")
        // rstrip swallows the newline/space after <|user|>; `</s>` is not special but still split out.
        XCTAssertEqual(phi3.encode("<|user|>\nhi", addSpecialTokens: false), [32010, 7251])
        XCTAssertEqual(phi3.encode("a <|user|> b", addSpecialTokens: false), [263, 29871, 32010, 289])
        XCTAssertEqual(phi3.encode("</s>  x", addSpecialTokens: false), [2, 921])
        XCTAssertEqual(phi3.decode([2, 921], skipSpecialTokens: true), "</s> x")
        let llama2 = try Conformance.tokenizer("llama2")
        XCTAssertEqual(llama2.encode(" <s>Hello</s> hi", addSpecialTokens: false), [259, 1, 15043, 2, 29871, 7251])
        XCTAssertEqual(llama2.decode([1, 15043, 1, 29871, 15043, 2]), "<s> Hello<s>  Hello</s>")
    }

    /// Found by differential fuzzing against `tokenizers`: NFC must compose 가 + ᆨ into 각 (Foundation on Linux
    /// does not), and canonically equivalent vocab entries (U+03AC vs U+1F71) are different tokens.
    func testNormalizationEdgeCases() throws {
        let qwen = try Conformance.tokenizer("qwen2")
        XCTAssertEqual(qwen.encode("\u{AC00}\u{11A8}", addSpecialTokens: false), qwen.encode("\u{AC01}", addSpecialTokens: false))
        XCTAssertEqual(qwen.encode("\u{2126}", addSpecialTokens: false), qwen.encode("\u{3A9}", addSpecialTokens: false))
        let llama2 = try Conformance.tokenizer("llama2")
        XCTAssertNotEqual(llama2.tokenToId("\u{3AC}"), llama2.tokenToId("\u{1F71}"))
        XCTAssertEqual(llama2.decode(llama2.encode("\u{1F71}\u{3AC}", addSpecialTokens: false)), "\u{1F71}\u{3AC}")
    }

    func testIncrementalWithPromptKeepsLeadingSpace() throws {
        let llama2 = try Conformance.tokenizer("llama2")
        let all = llama2.encode("Hello world, and you", addSpecialTokens: true)
        XCTAssertEqual(Array(all.prefix(2)), [1, 15043])
        let prompt = Array(all.prefix(2))
        let gen = Array(all.dropFirst(2))
        var d = IncrementalDetokenizer(tokenizer: llama2, skipSpecialTokens: true, promptTokenIds: prompt)
        var out = ""
        for id in gen { out += d.add(id) }
        out += d.finish()
        let full = llama2.decode(prompt + gen, skipSpecialTokens: true)
        XCTAssertEqual(llama2.decode(prompt, skipSpecialTokens: true) + out, full)
        XCTAssertEqual(out, " world, and you")
    }
}
