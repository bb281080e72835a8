/// Streaming decode, as vLLM's incremental detokenizer: `add` returns the text that just became final, and
/// the concatenation of every returned piece plus `finish()` equals `decode(all ids)` exactly.
///
/// State: ids[prefixOffset..<readOffset] is a window whose decode (`prefixText`) is non-empty and ends on a
/// complete character; the text of ids[readOffset...] is still pending. Each step decodes only
/// ids[prefixOffset...], so the cost per token is bounded by the window, not the sequence. A piece is held
/// back while the window's text ends in U+FFFD (an incomplete UTF-8 sequence that later bytes may finish).
/// The window never starts with empty text, so decoders that strip a leading space (SentencePiece's
/// Strip/Metaspace) act on the window's old text and not on the new piece.
public struct IncrementalDetokenizer {
    public let tokenizer: Tokenizer
    public let skipSpecialTokens: Bool
    /// Prompt ids followed by the ids added so far.
    public private(set) var ids: [Int]
    private let promptCount: Int
    private var prefixOffset: Int
    private var readOffset: Int
    private var prefixText: String
    /// UTF-8 bytes emitted so far (for the exact fallback).
    private var emittedBytes = 0
    /// The text emitted so far, for callers that want it (stop strings).
    public private(set) var text = ""

    /// `promptTokenIds` give the context the first new tokens are decoded in (e.g. SentencePiece's leading space);
    /// their text is not emitted.
    public init(tokenizer: Tokenizer, skipSpecialTokens: Bool, promptTokenIds: [Int] = []) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
        ids = promptTokenIds
        promptCount = promptTokenIds.count
        readOffset = promptTokenIds.count
        // The shortest tail of the prompt (at least 5 ids, as vLLM) whose text is non-empty and complete.
        var p = max(0, promptTokenIds.count - 5)
        var t = tokenizer.decode(Array(promptTokenIds[p...]), skipSpecialTokens: skipSpecialTokens)
        while p > 0 && (t.isEmpty || t.unicodeScalars.last == "\u{FFFD}") {
            p = max(0, p - 5)
            t = tokenizer.decode(Array(promptTokenIds[p...]), skipSpecialTokens: skipSpecialTokens)
        }
        prefixOffset = p
        prefixText = t
    }

    /// Appends one id; returns the text that is now final ("" if none yet).
    public mutating func add(_ id: Int) -> String {
        ids.append(id)
        let window = tokenizer.decode(Array(ids[prefixOffset...]), skipSpecialTokens: skipSpecialTokens)
        if window.unicodeScalars.last == "\u{FFFD}" { return "" }
        guard let piece = IncrementalDetokenizer.suffix(of: window, after: prefixText) else { return "" }
        // The new text is final: move the read offset, and make the new text the window if it stands alone.
        let newReadOffset = ids.count
        if !piece.isEmpty {
            let alone = tokenizer.decode(Array(ids[readOffset..<newReadOffset]), skipSpecialTokens: skipSpecialTokens)
            if !alone.isEmpty && alone.unicodeScalars.last != "\u{FFFD}" {
                prefixOffset = readOffset
                prefixText = alone
            } else {
                prefixText = window
            }
        } else {
            prefixText = window
        }
        readOffset = newReadOffset
        emit(piece)
        return piece
    }

    /// The rest of the text (held-back bytes at the end decode as U+FFFD, as in `decode`).
    public mutating func finish() -> String {
        let window = tokenizer.decode(Array(ids[prefixOffset...]), skipSpecialTokens: skipSpecialTokens)
        var piece = IncrementalDetokenizer.suffix(of: window, after: prefixText)
        if piece == nil {
            // Not expected; fall back to the exact answer from the full decode.
            let full = tokenizer.decode(Array(ids[promptCount...]), skipSpecialTokens: skipSpecialTokens)
            piece = String(decoding: Array(full.utf8.dropFirst(emittedBytes)), as: UTF8.self)
        }
        prefixText = window
        readOffset = ids.count
        emit(piece!)
        return piece!
    }

    private mutating func emit(_ piece: String) {
        emittedBytes += piece.utf8.count
        text += piece
    }

    /// `window` minus its byte prefix `prefix`, or nil if it does not start with it (compared as bytes, never as
    /// Characters: a combining mark must not merge across the boundary).
    static func suffix(of window: String, after prefix: String) -> String? {
        let w = window.utf8
        let p = prefix.utf8
        guard w.count >= p.count, w.starts(with: p) else { return nil }
        return String(decoding: Array(w.dropFirst(p.count)), as: UTF8.self)
    }
}
