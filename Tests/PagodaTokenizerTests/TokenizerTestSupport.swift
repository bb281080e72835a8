import Foundation
import XCTest

@testable import PagodaTokenizer

/// Where the conformance data lives: $PAGODA_CONFORMANCE or ../shared/conformance from the repo root.
enum Conformance {
    static let root: String = {
        if let env = ProcessInfo.processInfo.environment["PAGODA_CONFORMANCE"] { return env }
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return repo.appendingPathComponent("../shared/conformance").standardizedFileURL.path
    }()

    static func tokenizerDir(_ name: String) -> String { root + "/tokenizers/" + name }

    static let lock = NSLock()
    nonisolated(unsafe) static var loaded: [String: Tokenizer] = [:]

    /// Each tokenizer is loaded once per test process.
    static func tokenizer(_ name: String) throws -> Tokenizer {
        lock.lock()
        defer { lock.unlock() }
        if let t = loaded[name] { return t }
        let t = try Tokenizer(directory: tokenizerDir(name))
        loaded[name] = t
        return t
    }

    struct Case {
        let text: String
        let addSpecialTokens: Bool
        let ids: [Int]
        let decoded: String
        let decodedSkipSpecial: String
    }

    static func cases(_ name: String) throws -> [Case] {
        let data = try Data(contentsOf: URL(fileURLWithPath: tokenizerDir(name) + "/cases.jsonl"))
        return try String(decoding: data, as: UTF8.self).split(separator: "\n").map { line in
            let d = try JSONReader.parse(Data(line.utf8)) as! [String: Any]
            return Case(
                text: d["text"] as! String, addSpecialTokens: d["add_special_tokens"] as! Bool,
                ids: (d["ids"] as! [NSNumber]).map { $0.intValue }, decoded: d["decoded"] as! String,
                decodedSkipSpecial: d["decoded_skip_special"] as! String)
        }
    }

    /// llama.cpp's .inp/.out vectors: (text, ids) with add_special=false.
    static func llamaCppVectors(_ name: String) throws -> [(String, [Int])] {
        let dir = tokenizerDir(name)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir)
        guard let inp = files.first(where: { $0.hasSuffix(".gguf.inp") }) else { return [] }
        let sep = "\n__ggml_vocab_test__\n"
        let inputs = try String(contentsOfFile: dir + "/" + inp, encoding: .utf8).components(separatedBy: sep)
        let outs = try String(contentsOfFile: dir + "/" + inp.dropLast(4) + ".out", encoding: .utf8)
            .components(separatedBy: "\n")
        var result: [(String, [Int])] = []
        for (i, text) in inputs.dropLast().enumerated() {
            let ids = outs[i].split(separator: " ").map { Int($0)! }
            result.append((text, ids))
        }
        return result
    }
}
