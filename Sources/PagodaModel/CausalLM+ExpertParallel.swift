import PagodaKernels

extension CausalLM {
    /// True when MoE layers run expert-parallel (every forward is a collective over the EP group).
    public var isExpertParallel: Bool { expertParallel != nil }

    /// The expert-parallel counters and the latest load report; nil without expert parallelism.
    public var expertParallelStats: ExpertParallelStats? { expertParallel?.stats }

    /// True right after the step whose end produced a new expert-load report.
    public var expertLoadReportedThisStep: Bool { expertParallel?.reportedThisStep ?? false }

    /// An idle data-parallel rank's dummy step: no tokens of its own, but every MoE layer's dispatch and
    /// combine, computing the rows the other ranks route to its experts. Every rank of the EP group must
    /// run exactly one step (`forward` with tokens, or this) per wave step.
    public func expertParallelIdleStep() throws {
        guard let ep = expertParallel else { return }
        let s = scratch
        s.reserve(tokens: 1, logitRows: 0, maxContext: 1, dims: dims)
        let none = UnsafePointer(s.tokenRequest.pointer)
        do {
            let context = LayerContext(
                n: 0, positions: none, slotMapping: none, blockTables: [], maxContext: 1, scratch: s, rope: rope,
                pool: threadPool, tpGroup: parallelism.tpGroup, plan: plan, hidden: config.hiddenSize,
                eps: config.resolvedRmsNormEps, blockSize: blockSize, precision: precision, expertParallel: ep)
            for layer in layers {
                if case .experts(let moe) = layer.feedForward {
                    try moe.forwardExpertParallel(context, x: s.normed.pointer, out: s.hidden.pointer, ep: ep)
                }
            }
        }
        try ep.endStep()
    }
}
