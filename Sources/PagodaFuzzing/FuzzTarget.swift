import Foundation
import PagodaDistributed
import PagodaEngine
import PagodaModel
import PagodaOpenAI
import PagodaRouter
import PagodaTokenizer

/// Every parser that reads untrusted bytes, as a fuzz target: `run` feeds one input through the same entry
/// point production uses. Errors are the expected answer to bad input; a crash, a hang or a sanitizer report
/// is a bug. Used by the libFuzzer binary (`pagoda-fuzz`, built by `scripts/fuzz.sh`) and by the corpus replay
/// in the tests.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// `POST /v1/completions` bodies: decoding, declared and undeclared fields, the prompt forms.
    case openaiCompletion = "openai-completion"
    /// `POST /v1/chat/completions` bodies.
    case openaiChat = "openai-chat"
    /// `POST /tokenize` bodies.
    case openaiTokenize = "openai-tokenize"
    /// The proxy's routing-field scanner (and its decoder fallback), completions and chat.
    case proxyRouting = "proxy-routing"
    /// A safetensors file: header length, JSON header, tensor table against the file size.
    case safetensors
    /// A GGUF file: header, metadata, tensor table; then the model config and the tokenizer built from it.
    case gguf
    /// A `tokenizer.json`: the pipeline it describes, then an encode and a decode.
    case tokenizerJSON = "tokenizer-json"
    /// A Jinja chat template (clients may send one in `chat_template`), parsed and rendered on a small chat.
    case jinjaTemplate = "jinja-template"
    /// One engine-RPC frame body.
    case engineRPCFrame = "engine-rpc-frame"
    /// What a consumer sends a producer's KV server after the handshake: the read request (length-prefixed
    /// JSON) and a same-host copy's answer; served against a small cache holding a request's blocks.
    case kvTransferRequest = "kv-transfer-request"
    /// What a producer's KV server answers a consumer's read: the reply (and a same-host copy offer), then
    /// the blocks; read into a small cache.
    case kvTransferReply = "kv-transfer-reply"
    /// The bytes a peer sends before it is authenticated (`PeerAuthentication`), taken both by the listening
    /// side (the connector's challenge and proof) and by the connecting side (the listener's challenge and verdict).
    case peerAuthHandshake = "peer-auth-handshake"

    /// Feeds one input through the target and says whether it was accepted as valid; returns normally whatever
    /// the input.
    @discardableResult
    public func run(_ bytes: [UInt8]) -> Bool {
        switch self {
        case .openaiCompletion:
            return (try? OpenAIJSON.decodeRequestFields(CompletionRequest.self, from: Data(bytes))) != nil
        case .openaiChat:
            return (try? OpenAIJSON.decodeRequestFields(ChatCompletionRequest.self, from: Data(bytes))) != nil
        case .openaiTokenize:
            return (try? OpenAIJSON.decodeRequestFields(TokenizeRequest.self, from: Data(bytes))) != nil
        case .proxyRouting:
            let completion = (try? RequestSummary(json: bytes, isChat: false)) != nil
            let chat = (try? RequestSummary(json: bytes, isChat: true)) != nil
            return completion || chat
        case .safetensors:
            return Self.withFile(bytes, suffix: ".safetensors") { path in (try? SafetensorsFile(path: path)) != nil }
        case .gguf:
            return Self.withFile(bytes, suffix: ".gguf") { path in
                guard let file = try? GGUFFile(path: path) else { return false }
                _ = try? ModelConfig.load(gguf: file)
                if let vocabulary = try? GGUFVocabulary(metadata: file.metadata.plainValues(prefix: "tokenizer."), path: path),
                    let tokenizer = try? Tokenizer(gguf: vocabulary)
                {
                    Self.exercise(tokenizer)
                }
                return true
            }
        case .tokenizerJSON:
            return Self.withFile(bytes, suffix: ".json") { path in
                guard let tokenizer = try? Tokenizer(tokenizerJSON: path) else { return false }
                Self.exercise(tokenizer)
                return true
            }
        case .jinjaTemplate:
            guard let source = String(bytes: bytes, encoding: .utf8), let template = try? JinjaTemplate(source: source) else {
                return false
            }
            let messages: [JinjaValue] = [
                .dict(JinjaDict([("role", "system"), ("content", "Be brief.")])),
                .dict(JinjaDict([("role", "user"), ("content", "Hi <b>there</b> {{ x }}")])),
            ]
            let rendered = try? template.renderChat(
                messages: messages, addGenerationPrompt: true, specialTokens: ["bos_token": "<s>", "eos_token": "</s>"])
            return rendered != nil
        case .engineRPCFrame:
            return (try? EngineRPCFrame.decode(body: bytes)) != nil
        case .kvTransferRequest:
            return PeerSocket.withPeer(sending: bytes) { KVWirePeerInput.asProducer(fd: $0) }
        case .kvTransferReply:
            return PeerSocket.withPeer(sending: bytes) { KVWirePeerInput.asConsumer(fd: $0) }
        case .peerAuthHandshake:
            // No input passes: a proof needs the secret and the other side's fresh nonce.
            let accepted = PeerSocket.withPeer(sending: bytes) { fd in
                (try? PeerAuthentication.accept(fd: fd, secret: Self.handshakeSecret, timeout: 1)) != nil
            }
            let connected = PeerSocket.withPeer(sending: bytes) { fd in
                (try? PeerAuthentication.connect(fd: fd, secret: Self.handshakeSecret, timeout: 1)) != nil
            }
            return accepted || connected
        }
    }

    /// The secret of the handshake target's listener and connector.
    private static let handshakeSecret = PeerSecret.random()

    /// Encodes and decodes a fixed text with special and non-ASCII characters.
    private static func exercise(_ tokenizer: Tokenizer) {
        let ids = tokenizer.encode("Hello, world! 123 éà 日本語 <|im_start|> \u{1F600}\n\t  x")
        _ = tokenizer.decode(ids)
        _ = tokenizer.decode(Array(0..<min(64, tokenizer.vocabSize)), skipSpecialTokens: true)
    }

    /// Runs `body` on the input written to a temporary file (the file parsers read files, memory-mapped).
    private static func withFile(_ bytes: [UInt8], suffix: String, _ body: (String) -> Bool) -> Bool {
        let path = NSTemporaryDirectory() + "pagoda-fuzz-\(getpid())\(suffix)"
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { return false }
        defer { unlink(path) }
        return body(path)
    }
}
