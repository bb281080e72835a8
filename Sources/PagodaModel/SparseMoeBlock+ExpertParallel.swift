import Foundation
import PagodaDistributed
import PagodaKernels

extension SparseMoeBlock {
    /// The expert-parallel MoE block (vLLM's `--enable-expert-parallel`).
    ///
    /// 1. This TP rank's share of the tokens (all of them when TP = 1; TP ranks hold the same tokens, so
    ///    each routes a disjoint share and the layer's TP all-reduce puts the rows back together) goes
    ///    through the replicated router and its top-k.
    /// 2. Dispatch: every (token, chosen expert) pair becomes one row [expert id, hidden] sent to the
    ///    expert's owner; counts go first, so every receive buffer is exact.
    /// 3. Each local expert runs one SwiGLU over the rows it received.
    /// 4. Combine: the outputs go back by the reverse all-to-all, and each token adds its experts'
    ///    outputs with the routing weights, in ascending expert order (the order of the non-EP block).
    ///
    /// A rank with no tokens (`c.n == 0`, an idle data-parallel rank's dummy step) still takes part in
    /// both all-to-alls and computes the rows others route to its experts.
    func forwardExpertParallel(
        _ c: LayerContext, x: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>, ep: ExpertParallelRuntime
    ) throws {
        let s = c.scratch
        let h = c.hidden, k = topK, e = numExperts
        let n = ep.group.worldSize
        let tpSize = c.plan.tpSize, tpRank = c.plan.tpRank
        let t0 = c.n * tpRank / tpSize, t1 = c.n * (tpRank + 1) / tpSize, m = t1 - t0
        if c.n > 0 { out.initialize(repeating: 0, count: c.n * h) }

        // 1. Router over this rank's share.
        let chosen = s.routedExperts.pointer, chosenWeights = s.routedWeights.pointer  // [m, K]
        if m > 0 {
            let logits = s.routerLogits.pointer
            Gemm.run(x: x + t0 * h, m: m, weight: router, out: logits, workspace: s.gemmWorkspace, pool: c.pool)
            TopKRouting.run(
                logits: logits, count: m, numExperts: e, topK: k, renormalize: renormalize, experts: chosen,
                weights: chosenWeights)
        }

        // 2. Dispatch rows, grouped by owner.
        let row = h + 1
        let pairs = m * k
        ep.sendRows.reserve(max(pairs, 1) * row)
        ep.pairRow.reserve(max(pairs, 1))
        ep.combined.reserve(max(pairs, 1) * h)
        let sendCounts = ep.sendCounts, recvCounts = ep.recvCounts, cursor = ep.cursor
        sendCounts.initialize(repeating: 0, count: n)
        for p in 0..<pairs { sendCounts[ep.placement.owner(ofExpert: Int(chosen[p]))] += 1 }
        var start = 0
        for r in 0..<n {
            cursor[r] = start
            start += sendCounts[r]
        }
        let sendRows = ep.sendRows.pointer, pairRow = ep.pairRow.pointer
        for p in 0..<pairs {
            let expert = Int(chosen[p])
            let dest = ep.placement.owner(ofExpert: expert)
            let at = cursor[dest]
            cursor[dest] += 1
            pairRow[p] = at
            sendRows[at * row] = Float(expert)
            (sendRows + at * row + 1).update(from: x + (t0 + p / k) * h, count: h)
        }
        let clock = ContinuousClock()
        var exchanged = clock.now
        try ep.group.exchangeCounts(sendCounts, into: recvCounts)
        let counted = clock.now - exchanged
        var received = 0
        for r in 0..<n { received += recvCounts[r] }
        ep.recvRows.reserve(max(received, 1) * row)
        ep.results.reserve(max(received, 1) * h)
        ep.bucket.reserve(max(received, 1))
        let recvRows = ep.recvRows.pointer
        try ep.group.allToAllV(sendRows, sendCounts: sendCounts, rowSize: row, into: recvRows, recvCounts: recvCounts)
        var spent = clock.now - exchanged

        // 3. Local experts over the rows they received.
        let first = localExperts.lowerBound, local = localExperts.count
        let localCounts = ep.localCounts
        localCounts.initialize(repeating: 0, count: local)
        for i in 0..<received { localCounts[Int(recvRows[i * row]) - first] += 1 }
        var maxRows = 0
        var offset = 0
        for j in 0..<local {
            maxRows = max(maxRows, localCounts[j])
            let c = localCounts[j]
            localCounts[j] = offset  // start of expert j's bucket
            offset += c
        }
        let bucket = ep.bucket.pointer
        for i in 0..<received {
            let j = Int(recvRows[i * row]) - first
            bucket[localCounts[j]] = i
            localCounts[j] += 1
        }
        s.reserveExpertRows(maxRows, intermediate: c.plan.expertIntermediateLocal, hidden: h)
        let xin = s.expertIn.pointer, yout = s.expertOut.pointer, results = ep.results.pointer
        var begin = 0
        for j in 0..<local {
            let end = localCounts[j]
            let rows = end - begin
            if rows > 0 {
                for i in 0..<rows { (xin + i * h).update(from: recvRows + bucket[begin + i] * row + 1, count: h) }
                swiGLU(c, x: xin, rows: rows, gate: gate[j], up: up[j], down: down[j], out: yout)
                for i in 0..<rows { (results + bucket[begin + i] * h).update(from: yout + i * h, count: h) }
                ep.countRouted(localExpert: j, tokens: rows)
            }
            begin = end
        }

        // 4. Combine: results go back in the order they came (counts reversed), then the weighted sum.
        exchanged = clock.now
        let combined = ep.combined.pointer
        try ep.group.allToAllV(results, sendCounts: recvCounts, rowSize: h, into: combined, recvCounts: sendCounts)
        spent += clock.now - exchanged
        func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }
        ep.addAllToAllTime(seconds(spent), countsExchange: seconds(counted))
        for t in 0..<m {
            let dst = out + (t0 + t) * h
            // Ascending expert id among this token's k choices (k is small: a selection pass per output).
            var last = -1
            for _ in 0..<k {
                var best = -1, bestExpert = Int.max
                for slot in 0..<k {
                    let ex = Int(chosen[t * k + slot])
                    if ex > last && ex < bestExpert { (best, bestExpert) = (slot, ex) }
                }
                if best < 0 { break }
                last = bestExpert
                Elementwise.axpy(chosenWeights[t * k + best], combined + pairRow[t * k + best] * h, dst, h)
            }
        }
    }
}
