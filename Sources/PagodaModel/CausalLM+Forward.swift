import PagodaKernels

extension CausalLM {
    /// Runs this stage's layers over one flattened batch.
    ///
    /// - First stage: embeds `batch.tokenIds` (`hiddenIn` ignored). Later stages: `hiddenIn` holds the
    ///   previous stage's [2, N, hiddenSize] (hidden, then residual).
    /// - Last stage: writes logits [batch.logitsIndices.count, vocabSize] to `logits` (gathered over the
    ///   TP group; every TP rank that passes a pointer gets them, the driver is tpRank 0). Other stages
    ///   write [2, N, hiddenSize] (hidden, residual) to `hiddenOut`.
    /// K/V of every token are written into the paged cache at `batch.slotMapping` before attention reads
    /// positions 0...positions[i] through the request's block table.
    public func forward(
        _ batch: ForwardBatch, hiddenIn: UnsafePointer<Float>?, hiddenOut: UnsafeMutablePointer<Float>?,
        logits: UnsafeMutablePointer<Float>?
    ) throws {
        let n = batch.numTokens
        let maxContext = try validate(batch)
        if n == 0 { return }
        let h = config.hiddenSize
        let s = scratch
        let numLogits = parallelism.isLastStage ? batch.logitsIndices.count : 0
        s.reserve(tokens: n, logitRows: numLogits, maxContext: maxContext, dims: dims)

        // Token -> request map, RoPE tables.
        let tokenRequest = s.tokenRequest.pointer
        for r in 0..<batch.numRequests {
            for t in Int(batch.queryStartLoc[r])..<Int(batch.queryStartLoc[r + 1]) { tokenRequest[t] = Int32(r) }
        }
        batch.positions.withUnsafeBufferPointer {
            rope.tables(positions: $0.baseAddress!, count: n, cos: s.ropeCos.pointer, sin: s.ropeSin.pointer)
        }

        // Stage input: the stream is residual + hidden.
        if parallelism.isFirstStage {
            batch.tokenIds.withUnsafeBufferPointer {
                Elementwise.embeddingLookup(
                    ids: $0.baseAddress!, count: n, table: embedding!, rowRange: plan.vocabRange, out: s.hidden.pointer)
            }
            try parallelism.tpGroup?.allReduceSum(s.hidden.pointer, count: n * h)
            s.residual.pointer.initialize(repeating: 0, count: n * h)
        } else {
            guard let hiddenIn else { throw ModelLoadError.invalidBatch(reason: "a later pipeline stage needs hiddenIn") }
            s.hidden.pointer.update(from: hiddenIn, count: n * h)
            s.residual.pointer.update(from: hiddenIn + n * h, count: n * h)
        }

        try batch.positions.withUnsafeBufferPointer { positions in
            try batch.slotMapping.withUnsafeBufferPointer { slots in
                let context = LayerContext(
                    n: n, positions: positions.baseAddress!, slotMapping: slots.baseAddress!,
                    blockTables: batch.blockTables, maxContext: maxContext, scratch: s, rope: rope, pool: threadPool,
                    tpGroup: parallelism.tpGroup, plan: plan, hidden: h, eps: config.resolvedRmsNormEps,
                    blockSize: blockSize, precision: precision, expertParallel: expertParallel)
                for (i, layer) in layers.enumerated() {
                    try layer.forward(context, keyCache: keyCaches[i].pointer, valueCache: valueCaches[i].pointer)
                }
            }
        }
        try expertParallel?.endStep()

        if !parallelism.isLastStage {
            guard let hiddenOut else { throw ModelLoadError.invalidBatch(reason: "a non-last pipeline stage needs hiddenOut") }
            hiddenOut.update(from: s.hidden.pointer, count: n * h)
            (hiddenOut + n * h).update(from: s.residual.pointer, count: n * h)
            return
        }
        try computeLogits(batch, into: logits)
    }

    /// Final norm of the wanted rows, the LM head over this rank's vocabulary shard, and the gather.
    private func computeLogits(_ batch: ForwardBatch, into logits: UnsafeMutablePointer<Float>?) throws {
        let s = scratch
        let h = config.hiddenSize
        let rows = batch.logitsIndices.count
        if rows == 0 { return }
        let residual = s.residual.pointer, hidden = s.hidden.pointer, finalRows = s.finalRows.pointer
        for (j, t) in batch.logitsIndices.enumerated() {
            let src = Int(t) * h
            for i in 0..<h { finalRows[j * h + i] = residual[src + i] + hidden[src + i] }
        }
        finalNorm!.withUnsafeBufferPointer {
            RMSNorm.run(x: finalRows, weight: $0.baseAddress!, out: finalRows, rows: rows, dim: h, eps: config.resolvedRmsNormEps)
        }
        let shardRows = plan.vocabRange.count
        let vocab = config.vocabSize
        if parallelism.tpSize == 1 {
            guard let logits else { return }
            Gemm.run(
                x: finalRows, m: rows, weight: lmHead!, out: logits, workspace: s.gemmWorkspace, pool: threadPool,
                precision: precision)
            return
        }
        // Vocabulary-parallel: every rank's [rows, vocabShard] shard (padded), all-gathered by rank.
        let shard = plan.vocabShardSize
        let local = s.logitsShard.pointer
        if shardRows > 0 {
            Gemm.run(
                x: finalRows, m: rows, weight: lmHead!, out: local, ldo: shard, workspace: s.gemmWorkspace,
                pool: threadPool, precision: precision)
        }
        let gathered = s.gathered.pointer
        try parallelism.tpGroup!.allGather(local, count: rows * shard, into: gathered)
        guard let logits else { return }
        for r in 0..<parallelism.tpSize {
            let v0 = r * shard
            let len = max(0, min(vocab, v0 + shard) - v0)
            for j in 0..<rows {
                (logits + j * vocab + v0).update(from: gathered + (r * rows + j) * shard, count: len)
            }
        }
    }

    /// Checks the batch's shapes and cache addresses so a bad batch is an error, not a crash.
    /// Returns the longest context (max position + 1).
    private func validate(_ b: ForwardBatch) throws -> Int {
        guard !keyCaches.isEmpty || layers.isEmpty else { throw ModelLoadError.kvCacheNotAllocated }
        let n = b.numTokens
        guard b.positions.count == n, b.slotMapping.count == n else {
            throw ModelLoadError.invalidBatch(reason: "tokenIds, positions and slotMapping must have the same length")
        }
        guard b.queryStartLoc.count == b.numRequests + 1, b.blockTables.count == b.numRequests,
            b.queryStartLoc.first == 0, Int(b.queryStartLoc.last ?? -1) == n
        else {
            throw ModelLoadError.invalidBatch(reason: "queryStartLoc must be [R+1] from 0 to numTokens, blockTables [R]")
        }
        let capacity = numBlocks * blockSize
        var maxContext = 1
        for r in 0..<b.numRequests {
            let lo = Int(b.queryStartLoc[r]), hi = Int(b.queryStartLoc[r + 1])
            guard lo <= hi else { throw ModelLoadError.invalidBatch(reason: "queryStartLoc is not increasing") }
            let table = b.blockTables[r]
            for block in table where block < 0 || Int(block) >= numBlocks {
                throw ModelLoadError.invalidBatch(reason: "block id \(block) out of range 0..<\(numBlocks)")
            }
            for t in lo..<hi {
                let p = Int(b.positions[t])
                guard p >= 0, p / max(blockSize, 1) < table.count else {
                    throw ModelLoadError.invalidBatch(reason: "position \(p) of request \(r) is beyond its block table")
                }
                guard Int(b.slotMapping[t]) < capacity else {
                    throw ModelLoadError.invalidBatch(reason: "slot \(b.slotMapping[t]) beyond the KV cache")
                }
                maxContext = max(maxContext, p + 1)
            }
        }
        if parallelism.isFirstStage {
            for id in b.tokenIds where id < 0 || Int(id) >= config.vocabSize {
                throw ModelLoadError.invalidBatch(reason: "token id \(id) out of range 0..<\(config.vocabSize)")
            }
        }
        for i in b.logitsIndices where i < 0 || Int(i) >= n {
            throw ModelLoadError.invalidBatch(reason: "logits index \(i) out of range 0..<\(n)")
        }
        return maxContext
    }

    /// Convenience for tests and simple callers: runs a single-stage forward and returns the logits
    /// [logitsIndices.count × vocabSize] (allocates the result).
    public func forwardLogits(_ batch: ForwardBatch) throws -> [Float] {
        var out = [Float](repeating: 0, count: batch.logitsIndices.count * config.vocabSize)
        try out.withUnsafeMutableBufferPointer { try forward(batch, hiddenIn: nil, hiddenOut: nil, logits: $0.baseAddress!) }
        return out
    }
}
