import Foundation
import PagodaStructured

/// What the sampler needs to know about one request besides its logits row.
public protocol SamplingState: AnyObject {
    var sampling: SamplingParams { get }
    var promptTokenIds: [Int] { get }
    var outputTokenIds: [Int] { get }
    var eosTokenIds: [Int] { get }
    var generator: SamplingRNG { get set }
    /// The grammar matcher of a structured-output request (nil: free text).
    var grammarMatcher: GrammarMatcher? { get }
}

extension SamplingState {
    public var grammarMatcher: GrammarMatcher? { nil }

    /// Whether `token` ends the request (EOS unless ignored, or a stop token id).
    public func isTerminator(_ token: Int) -> Bool {
        (!sampling.ignoreEOS && eosTokenIds.contains(token)) || sampling.stopTokenIds.contains(token)
    }
}

/// Turns one logits row into one token, following vLLM's order: min-tokens suppression, logit bias
/// and penalties on the raw logits, then greedy argmax, or temperature, min-p, top-k, top-p and a draw from the
/// request's own generator. Logprobs are those of the raw logits (vLLM's default `raw_logprobs`).
///
/// All scratch buffers are allocated once for the vocabulary size; sampling a token allocates only
/// the returned logprob entries (when asked for).
public final class Sampler {
    public let vocabSize: Int
    /// A row copy when logprobs are wanted (the raw row must survive processing).
    private let work: UnsafeMutablePointer<Float>
    /// Candidate (logit, id) pairs for top-k / top-p.
    private let candLogit: UnsafeMutablePointer<Float>
    private let candId: UnsafeMutablePointer<Int32>
    private var order: [Int32]
    /// Per-token marks and counts for penalties; `stamp[t] == epoch` means "seen in this pass".
    private let stamp: UnsafeMutablePointer<UInt32>
    private let counts: UnsafeMutablePointer<Int32>
    private var epoch: UInt32 = 0

    public init(vocabSize: Int) {
        self.vocabSize = vocabSize
        work = .allocate(capacity: vocabSize)
        candLogit = .allocate(capacity: vocabSize)
        candId = .allocate(capacity: vocabSize)
        stamp = .allocate(capacity: vocabSize)
        stamp.initialize(repeating: 0, count: vocabSize)
        counts = .allocate(capacity: vocabSize)
        counts.initialize(repeating: 0, count: vocabSize)
        order = []
        order.reserveCapacity(vocabSize)
    }

    deinit {
        work.deallocate(); candLogit.deallocate(); candId.deallocate(); stamp.deallocate(); counts.deallocate()
    }

    /// Samples one token from `logits` (vocabSize floats, modified in place unless logprobs are wanted).
    public func sample(logits: UnsafeMutablePointer<Float>, state: SamplingState) -> (token: Int, logprob: TokenLogprob?) {
        let p = state.sampling
        var row = logits
        var rawLSE: Float = 0
        var top: [TopLogprob] = []
        if let n = p.logprobs {
            rawLSE = Self.logSumExp(logits, vocabSize)
            top = topLogprobs(logits, count: min(n, vocabSize), lse: rawLSE)
            work.update(from: logits, count: vocabSize)
            row = work
        }
        applyMinTokens(row, state)
        applyLogitBias(row, p.logitBias)
        applyPenalties(row, state)
        if let m = state.grammarMatcher {
            m.applyMask(row, count: vocabSize)
        }
        let token: Int
        if p.temperature < 1e-5 {
            token = Self.argmax(row, vocabSize)
        } else {
            token = sampleRandom(row, state)
        }
        var lp: TokenLogprob? = nil
        if p.logprobs != nil { lp = TokenLogprob(tokenId: token, logprob: logits[token] - rawLSE, top: top) }
        return (token, lp)
    }

    // MARK: - Logits processors

    /// Below `minTokens` generated tokens, EOS (unless ignored) and stop token ids cannot be chosen, except
    /// where a structured-output grammar allows nothing but a terminator: the grammar wins, and the
    /// scheduler ends the request there (`Scheduler.checkStop`).
    private func applyMinTokens(_ row: UnsafeMutablePointer<Float>, _ s: SamplingState) {
        let p = s.sampling
        guard s.outputTokenIds.count < p.minTokens else { return }
        if let m = s.grammarMatcher, m.mustEnd { return }
        for t in p.stopTokenIds where t >= 0 && t < vocabSize { row[t] = -.infinity }
        if !p.ignoreEOS { for t in s.eosTokenIds where t >= 0 && t < vocabSize { row[t] = -.infinity } }
    }

    /// Adds each `logitBias` entry to its token's logit (vLLM applies it with min-tokens, before the
    /// penalties, so it moves the greedy pick too). Ids were validated against the vocabulary.
    private func applyLogitBias(_ row: UnsafeMutablePointer<Float>, _ bias: [LogitBias]) {
        for b in bias where b.tokenId >= 0 && b.tokenId < vocabSize { row[b.tokenId] += b.bias }
    }

    /// Repetition penalty over prompt + output tokens (divide positive logits, multiply negative ones);
    /// frequency (× count) and presence penalties over output tokens (OpenAI's definition).
    private func applyPenalties(_ row: UnsafeMutablePointer<Float>, _ s: SamplingState) {
        let p = s.sampling
        if p.repetitionPenalty != 1 {
            let e = nextEpoch()
            let r = p.repetitionPenalty
            func penalize(_ t: Int) {
                if stamp[t] != e {
                    stamp[t] = e
                    row[t] = row[t] > 0 ? row[t] / r : row[t] * r
                }
            }
            for t in s.promptTokenIds where t < vocabSize { penalize(t) }
            for t in s.outputTokenIds where t < vocabSize { penalize(t) }
        }
        if p.frequencyPenalty != 0 || p.presencePenalty != 0 {
            let e = nextEpoch()
            for t in s.outputTokenIds where t < vocabSize {
                if stamp[t] != e { stamp[t] = e; counts[t] = 0 }
                counts[t] += 1
            }
            for t in s.outputTokenIds where t < vocabSize && counts[t] > 0 {
                row[t] -= p.frequencyPenalty * Float(counts[t]) + p.presencePenalty
                counts[t] = 0
            }
        }
    }

    private func nextEpoch() -> UInt32 {
        if epoch == .max {
            stamp.update(repeating: 0, count: vocabSize)
            epoch = 0
        }
        epoch += 1
        return epoch
    }

    // MARK: - Random sampling

    private func sampleRandom(_ row: UnsafeMutablePointer<Float>, _ s: SamplingState) -> Int {
        let p = s.sampling
        let invT = 1 / p.temperature
        var m = -Float.infinity
        for i in 0..<vocabSize {
            row[i] *= invT
            if row[i] > m { m = row[i] }
        }
        let u = s.generator.nextUniform()  // exactly one draw per sampled token
        guard m > -.infinity else { return 0 }
        // Tokens more than 30 below the max carry < e^-30 each: below Float resolution of the total.
        var cutoff = m - 30
        if p.minP > 0 { cutoff = max(cutoff, m + logf(p.minP)) }
        let useTopK = p.topK > 0 && p.topK < vocabSize
        if !useTopK && p.topP >= 1 {
            // Plain draw from softmax: the row becomes unnormalized probabilities (one exp per token),
            // then an inverse-CDF scan.
            var total: Float = 0
            for i in 0..<vocabSize {
                let e = row[i] >= cutoff ? expf(row[i] - m) : 0
                row[i] = e
                total += e
            }
            let target = Float(u) * total
            var acc: Float = 0
            var last = 0
            for i in 0..<vocabSize where row[i] > 0 {
                acc += row[i]
                last = i
                if acc > target { return i }
            }
            return last
        }
        // Candidates (logit, id), then best first.
        var n = 0
        if useTopK {
            n = selectTopK(row, k: p.topK, cutoff: cutoff)
        } else {
            for i in 0..<vocabSize where row[i] >= cutoff {
                candLogit[n] = row[i]; candId[n] = Int32(i); n += 1
            }
        }
        order.removeAll(keepingCapacity: true)
        for j in 0..<n { order.append(Int32(j)) }
        let cl = candLogit, ci = candId
        order.sort { a, b in
            let la = cl[Int(a)], lb = cl[Int(b)]
            return la != lb ? la > lb : ci[Int(a)] < ci[Int(b)]
        }
        var total: Double = 0
        for j in 0..<n { total += Double(expf(candLogit[Int(order[j])] - m)) }
        // Top-p keeps the smallest best-first prefix whose mass reaches topP.
        var keep = n
        if p.topP < 1 {
            var acc: Double = 0
            let need = Double(p.topP) * total
            for j in 0..<n {
                acc += Double(expf(candLogit[Int(order[j])] - m))
                if acc >= need { keep = j + 1; break }
            }
            total = acc
        }
        let target = u * total
        var acc: Double = 0
        for j in 0..<keep {
            acc += Double(expf(candLogit[Int(order[j])] - m))
            if acc > target { return Int(candId[Int(order[j])]) }
        }
        return Int(candId[Int(order[keep - 1])])
    }

    /// The k largest logits ≥ cutoff into candLogit/candId[0..<n] (a min-heap on candLogit); returns n.
    private func selectTopK(_ row: UnsafeMutablePointer<Float>, k: Int, cutoff: Float) -> Int {
        var n = 0
        for i in 0..<vocabSize {
            let v = row[i]
            if v < cutoff { continue }
            if n < k {
                // sift up
                var c = n
                n += 1
                while c > 0 {
                    let parent = (c - 1) / 2
                    if candLogit[parent] <= v { break }
                    candLogit[c] = candLogit[parent]; candId[c] = candId[parent]
                    c = parent
                }
                candLogit[c] = v; candId[c] = Int32(i)
            } else if v > candLogit[0] {
                // replace the root, sift down
                var c = 0
                while true {
                    var child = 2 * c + 1
                    if child >= n { break }
                    if child + 1 < n && candLogit[child + 1] < candLogit[child] { child += 1 }
                    if candLogit[child] >= v { break }
                    candLogit[c] = candLogit[child]; candId[c] = candId[child]
                    c = child
                }
                candLogit[c] = v; candId[c] = Int32(i)
            }
        }
        return n
    }

    // MARK: - Helpers

    /// Index of the largest value; the first one on ties (as torch.argmax).
    public static func argmax(_ x: UnsafePointer<Float>, _ n: Int) -> Int {
        var best = 0
        var bv = x[0]
        for i in 1..<n where x[i] > bv { bv = x[i]; best = i }
        return best
    }

    public static func logSumExp(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var m = -Float.infinity
        for i in 0..<n where x[i] > m { m = x[i] }
        guard m > -.infinity else { return m }
        var s: Float = 0
        for i in 0..<n { s += expf(x[i] - m) }
        return m + logf(s)
    }

    /// The `count` largest raw logprobs, best first.
    func topLogprobs(_ x: UnsafePointer<Float>, count: Int, lse: Float) -> [TopLogprob] {
        guard count > 0 else { return [] }
        if count > 64 {
            // Many alternatives (`--max-logprobs` above the default): insertion below costs vocabulary × count,
            // one sort of the vocabulary costs vocabulary × log. Ties keep the lower token id first, as below.
            var ids = Array(0..<vocabSize)
            ids.sort { a, b in x[a] > x[b] || (x[a] == x[b] && a < b) }
            return ids.prefix(count).map { TopLogprob(tokenId: $0, logprob: x[$0] - lse) }
        }
        var best: [TopLogprob] = []
        best.reserveCapacity(count + 1)
        for i in 0..<vocabSize {
            let v = x[i]
            if best.count == count && v <= best[count - 1].logprob { continue }
            var j = best.count
            if best.count < count { best.append(TopLogprob(tokenId: i, logprob: v)) } else { j = count - 1 }
            while j > 0 && best[j - 1].logprob < v { best[j] = best[j - 1]; j -= 1 }
            best[j] = TopLogprob(tokenId: i, logprob: v)
        }
        for j in best.indices { best[j].logprob -= lse }
        return best
    }
}
