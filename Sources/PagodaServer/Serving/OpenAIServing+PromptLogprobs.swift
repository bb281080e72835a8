import PagodaEngine
import PagodaOpenAI

/// Prompt logprobs on the wire: vLLM's `prompt_logprobs` list (completions per choice, chat per
/// response) and the echoed prompt's part of legacy-completions `logprobs` (`echo` + `logprobs`).
/// The engine computes them only for requests that ask (`SamplingParams.promptLogprobs`).
extension OpenAIServing {
    /// vLLM refuses `prompt_logprobs` on streams (a positive count asks for a list no chunk carries).
    func checkPromptLogprobs(_ promptLogprobs: Int?, stream: Bool) throws {
        if stream, let k = promptLogprobs, k > 0 {
            throw OpenAIError.badRequest("`prompt_logprobs` are not available when `stream=True`.", param: "prompt_logprobs")
        }
    }

    /// vLLM's `prompt_logprobs`: null for the first prompt token, then per token its own entry and the
    /// top `k` alternatives, keyed by token id.
    func promptLogprobsList(_ promptIds: [Int], _ logprobs: [TokenLogprob], top k: Int) -> PromptLogprobs {
        var out: PromptLogprobs = [nil]
        out.reserveCapacity(promptIds.count)
        for lp in logprobs {
            var entries: [String: PromptLogprobEntry] = [:]
            for (r, t) in lp.top.prefix(k).enumerated() {
                entries[String(t.tokenId)] = PromptLogprobEntry(
                    logprob: Double(t.logprob), rank: r + 1, decodedToken: tokenizer.tokenText(t.tokenId))
            }
            entries[String(lp.tokenId)] = PromptLogprobEntry(
                logprob: Double(lp.logprob), rank: lp.rank, decodedToken: tokenizer.tokenText(lp.tokenId))
            out.append(entries)
        }
        return out
    }

    /// The echoed prompt's tokens in legacy format: the first token has no logprob (null), each
    /// other one its logprob and the top `k` alternatives plus itself; `offset` runs over the
    /// tokens' text as for generated tokens.
    func echoedPromptLogprobs(_ promptIds: [Int], _ logprobs: [TokenLogprob], top k: Int, offset: inout Int) -> CompletionLogprobs {
        var out = CompletionLogprobs()
        for (p, id) in promptIds.enumerated() {
            let text = tokenizer.tokenText(id)
            out.tokens.append(text)
            out.textOffset.append(offset)
            offset += text.count
            guard p >= 1, p - 1 < logprobs.count else {
                out.tokenLogprobs.append(nil)
                out.topLogprobs.append(nil)
                continue
            }
            let lp = logprobs[p - 1]
            out.tokenLogprobs.append(Double(lp.logprob))
            var top: [String: Double] = [:]
            for t in lp.top.prefix(k) { top[tokenizer.tokenText(t.tokenId)] = Double(t.logprob) }
            top[text] = Double(lp.logprob)
            out.topLogprobs.append(top)
        }
        return out
    }
}
