import Foundation
import PagodaFuzzing
import XCTest

/// Replays every committed fuzz corpus (Tests/FuzzCorpus/<target>/: seeds, inputs the fuzzer kept, and
/// `regression-*` inputs that once crashed a parser) through its target, as CI's stand-in for fuzzing time.
final class FuzzCorpusReplayTests: XCTestCase {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("FuzzCorpus")

    /// Seeds that are valid inputs: the target must accept them, so a target that rejects everything early
    /// (and would fuzz nothing) fails here.
    static let mustAccept: [FuzzTarget: [String]] = [
        .openaiCompletion: ["plain", "batch", "token-ids"],
        .openaiChat: ["plain", "parts", "tools"],
        .openaiTokenize: ["prompt", "messages"],
        .proxyRouting: ["openai-completion-plain", "openai-chat-plain"],
        .safetensors: ["two-tensors", "empty"],
        .gguf: ["tiny-v3"],
        .tokenizerJSON: ["byte-level-bpe", "metaspace-bpe"],
        .jinjaTemplate: ["constructs", "Qwen-Qwen2.5-7B-Instruct.jinja", "meta-llama-Llama-3.1-8B-Instruct.jinja"],
        .engineRPCFrame: ["hello", "abort", "utility", "failure"],
        .kvTransferRequest: ["read", "read-one-head", "end-hold"],
        .kvTransferReply: ["ok-stream", "offer-then-stream"],
    ]

    /// Seeds that are invalid: the target must refuse them (with an error, not a crash).
    static let mustRefuse: [FuzzTarget: [String]] = [
        .safetensors: ["truncated", "regression-header-length-overflow"],
        .gguf: ["tiny-v3-head"],
        .kvTransferRequest: [
            "unknown-request", "layout-mismatch", "too-long", "regression-head-count-overflow", "regression-repeated-blocks",
        ],
        .kvTransferReply: [
            "refused", "short-stream", "regression-offer-heads-overflow", "regression-offer-head-start-overflow",
            "regression-offer-address-overflow",
        ],
        .peerAuthHandshake: ["connector", "listener-accepts", "listener-refuses", "truncated", "no-handshake"],
    ]

    func testEveryTargetHasACorpusAndReplaysIt() throws {
        for target in FuzzTarget.allCases {
            let folder = Self.corpus.appendingPathComponent(target.rawValue)
            let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
            XCTAssertFalse(files.isEmpty, "no corpus for \(target.rawValue)")
            var accepted = Set<String>()
            for name in files {
                let data = try Data(contentsOf: folder.appendingPathComponent(name))
                if target.run(Array(data)) { accepted.insert(name) }
            }
            for name in Self.mustAccept[target] ?? [] {
                XCTAssertTrue(accepted.contains(name), "\(target.rawValue) refused its valid seed \(name)")
            }
            for name in Self.mustRefuse[target] ?? [] {
                XCTAssertFalse(accepted.contains(name), "\(target.rawValue) accepted its invalid seed \(name)")
            }
        }
    }
}
