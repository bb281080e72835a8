import PagodaEngine
import PagodaOpenAI

/// What one engine output added to a choice, ready to stream.
struct ChoiceDelta {
    var text: String
    /// The new tokens (all of them, also those whose text is held back or cut by a stop string).
    var tokenIds: [Int]
    var logprobs: [TokenLogprob]
    /// Set on the choice's last delta: "stop", "length", "abort".
    var finishReason: String?
    var stopReason: StopReason?
    /// A stop string ended the choice: the engine request must be aborted.
    var stoppedByString: Bool
    /// The prompt's logprobs (prompt tokens 1...), on the first delta when the request asked for them.
    var promptLogprobs: [TokenLogprob]? = nil
}

/// Turns one engine request's outputs into text (vLLM's per-request detokenizer + stop checker of
/// `OutputProcessor`): incremental detokenization, stop strings, the stop token's text left out,
/// and the held-back tail while streaming.
final class ChoiceOutputProcessor {
    let index: Int
    private let detokenizer: any StreamingDetokenizer
    private let stopChecker: StopStringChecker
    private let minTokens: Int
    /// The output text so far (Unicode scalars; a stop string cuts it).
    private(set) var text: [Unicode.Scalar] = []
    /// How much of `text` has been handed out.
    private var emitted = 0
    private(set) var tokenIds: [Int] = []
    private(set) var logprobs: [TokenLogprob] = []
    private(set) var finishReason: String?
    private(set) var stopReason: StopReason?
    private(set) var numCachedTokens = 0
    /// Prompt tokens 1... with their logprobs (`sampling.promptLogprobs`), from the first output.
    private(set) var promptLogprobs: [TokenLogprob]?
    /// Where a decode server reads this choice's KV (a prefill server's last output).
    private(set) var kvTransferParams: KVTransferParams?
    private let includeStopStrInOutput: Bool
    private let stops: [String]

    init(index: Int, tokenizer: ServingTokenizer, sampling: RequestSampling, promptTokenIds: [Int]) {
        self.index = index
        self.detokenizer = tokenizer.makeDetokenizer(skipSpecialTokens: sampling.skipSpecialTokens, promptTokenIds: promptTokenIds)
        self.stopChecker = StopStringChecker(stops: sampling.stops, includeStopStrInOutput: sampling.includeStopStrInOutput)
        self.minTokens = sampling.params.minTokens
        self.includeStopStrInOutput = sampling.includeStopStrInOutput
        self.stops = sampling.stops
    }

    var isFinished: Bool { finishReason != nil }
    var outputText: String { String(String.UnicodeScalarView(text)) }

    /// Applies one engine output. Text held back for stop strings is released on the last delta.
    func process(_ output: EngineOutput, streaming: Bool) -> ChoiceDelta {
        var delta = ChoiceDelta(text: "", tokenIds: [], logprobs: [], finishReason: nil, stopReason: nil, stoppedByString: false)
        if let k = output.kvTransferParams { kvTransferParams = k }
        guard !isFinished else { return delta }
        if let c = output.numCachedTokens { numCachedTokens = c }
        if let p = output.promptLogprobs {
            promptLogprobs = p
            delta.promptLogprobs = p
        }
        let ids = output.newTokenIds
        // The token that matched a stop token id / EOS is not part of the text (vLLM v1).
        var textIds = ids[...]
        if output.finishReason == .stop, let stopToken = output.stopReason, ids.last == stopToken, !includeStopStrInOutput {
            textIds = ids.dropLast()
        }
        for (k, id) in ids.enumerated() {
            tokenIds.append(id)
            delta.tokenIds.append(id)
            if let lp = output.newLogprobs, k < lp.count { logprobs.append(lp[k]); delta.logprobs.append(lp[k]) }
            guard k < textIds.count else { continue }
            let piece = detokenizer.add(id)
            if append(piece) {
                delta.stoppedByString = true
                break
            }
        }
        if !delta.stoppedByString, let reason = output.finishReason {
            if append(detokenizer.finish()) {
                delta.stoppedByString = true
            } else {
                finishReason = reason.rawValue == "error" ? "abort" : reason.rawValue
                if let t = output.stopReason, reason == .stop { stopReason = .token(t) }
            }
        }
        if delta.stoppedByString { finishReason = "stop" }
        delta.finishReason = finishReason
        delta.stopReason = stopReason
        delta.text = takeText(finished: isFinished || !streaming)
        return delta
    }

    /// Appends detokenized text and checks stop strings (only once `min_tokens` are out).
    /// Returns true when a stop string ended the choice.
    private func append(_ piece: String) -> Bool {
        guard !piece.isEmpty else { return false }
        let before = text.count
        text.append(contentsOf: piece.unicodeScalars)
        guard !stopChecker.stops.isEmpty, tokenIds.count > minTokens else { return false }
        if let (k, cut) = stopChecker.check(text, newCount: text.count - before) {
            text.removeSubrange(min(cut, text.count)..<text.count)
            emitted = min(emitted, text.count)
            stopReason = .text(stops.filter { !$0.isEmpty }[k])
            return true
        }
        return false
    }

    /// The text not yet handed out, minus the held-back tail unless finished.
    private func takeText(finished: Bool) -> String {
        let end = finished ? text.count : max(emitted, text.count - stopChecker.bufferLength)
        guard end > emitted else { return "" }
        let s = String(String.UnicodeScalarView(text[emitted..<end]))
        emitted = end
        return s
    }
}
