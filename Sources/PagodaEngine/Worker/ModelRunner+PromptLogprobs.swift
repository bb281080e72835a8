/// Prompt logprobs (vLLM's `prompt_logprobs`): the logits of every prompt position, not only the
/// last, for the requests that ask. Their prompt positions join the batch's `logitsIndices` after
/// the sampling rows, and the forward pass writes those rows into a separate, larger buffer; a step
/// without such requests uses the usual [maxNumSeqs, vocab] buffer and pays nothing.
///
/// Memory: one vocabulary-wide row per prompt position of the step (a 2,048-token prefill chunk of a
/// 151,936-token vocabulary is 1.2 GiB); the buffer grows to the largest step seen and is kept.
/// The prefix cache is skipped for such requests (`KVCacheManager.getComputedBlocks`), so every
/// prompt position is computed; chunked prefill gives one `PromptLogprobsChunk` per chunk.
extension ModelRunner {
    /// One prompt position whose logits are wanted: the token after it is the one scored.
    struct PromptLogitsRow {
        let state: CachedRequestState
        let position: Int
    }

    /// Records the prompt positions in `start ..< start + count` (the tokens now in the batch from
    /// `firstIndex` on) that score a following prompt token.
    func addPromptRows(_ st: CachedRequestState, start: Int, count: Int, firstIndex: Int) {
        let end = min(start + count, st.promptTokenIds.count - 1)
        guard start < end else { return }
        for pos in start..<end {
            promptRows.append(PromptLogitsRow(state: st, position: pos))
            promptBatchIndices.append(Int32(firstIndex + pos - start))
        }
    }

    /// Appends the prompt rows to `logitsIndices` and returns a buffer with room for every row:
    /// [sampleRows + promptRows.count, vocabSize], sampling rows first.
    func logitsWithPromptRows(sampleRows: Int) -> UnsafeMutablePointer<Float> {
        batch.logitsIndices.append(contentsOf: promptBatchIndices)
        let rows = sampleRows + promptRows.count
        if rows > promptLogitsCapacity {
            promptLogitsBuffer?.deallocate()
            promptLogitsBuffer = .allocate(capacity: rows * vocabSize)
            promptLogitsCapacity = rows
        }
        return promptLogitsBuffer!
    }

    /// The logprob (raw logits, as the sampler's), rank and top-k of each prompt row's next token,
    /// one chunk per request. `rows` points at the first prompt row.
    func promptLogprobs(_ rows: UnsafePointer<Float>) -> [PromptLogprobsChunk] {
        var chunks: [PromptLogprobsChunk] = []
        for (r, row) in promptRows.enumerated() {
            let x = rows + r * vocabSize
            let target = row.state.promptTokenIds[row.position + 1]
            let lse = Sampler.logSumExp(x, vocabSize)
            let k = min(max(row.state.sampling.promptLogprobs ?? 0, 0), vocabSize)
            let v = x[target]
            var rank = 1
            for i in 0..<vocabSize where x[i] > v { rank += 1 }
            let entry = TokenLogprob(tokenId: target, logprob: v - lse, top: sampler.topLogprobs(x, count: k, lse: lse), rank: rank)
            if let last = chunks.last, last.reqId == row.state.reqId {
                chunks[chunks.count - 1].entries.append(entry)
            } else {
                chunks.append(PromptLogprobsChunk(reqId: row.state.reqId, firstTokenIndex: row.position + 1, entries: [entry]))
            }
        }
        return chunks
    }
}
