import PagodaModel
import PagodaStructured

/// Runs one step on the model: keeps per-request state from the SchedulerOutput diffs, flattens the
/// scheduled tokens into a `ForwardBatch`, runs the forward pass and samples one token for every
/// request whose scheduled tokens reach the end of its sequence (vLLM's `GPUModelRunner`).
///
/// The batch arrays and the logits buffer are kept between steps and reused in place, so a decode
/// step allocates only its output message.
public final class ModelRunner {
    public let model: RunnableModel
    public let blockSize: Int
    public let maxNumSeqs: Int
    public let vocabSize: Int
    private var requests: [String: CachedRequestState] = [:]
    var batch = ForwardBatch(
        tokenIds: [], positions: [], slotMapping: [], queryStartLoc: [], contextLens: [],
        blockTables: [], logitsIndices: [])
    /// [maxNumSeqs, vocabSize]: one row per request that samples this step.
    private let logits: UnsafeMutablePointer<Float>
    private var sampleStates: [CachedRequestState] = []
    let sampler: Sampler
    /// Seeds the generators of requests without a seed.
    private var defaultGenerator: SamplingRNG
    /// Prompt positions whose logits this step's requests with `promptLogprobs` want (none for others),
    /// and the larger logits buffer they need; see `ModelRunner+PromptLogprobs.swift`.
    var promptRows: [PromptLogitsRow] = []
    var promptBatchIndices: [Int32] = []
    var promptLogitsBuffer: UnsafeMutablePointer<Float>?
    var promptLogitsCapacity = 0
    /// Constrained decoding: the model's vocabulary as bytes and the compiled constraints.
    private let structured: StructuredDecoding
    /// Test hook: sees every step's logits rows (request ids in row order) before sampling.
    public var logitsObserver: ((_ reqIds: [String], _ logits: UnsafePointer<Float>, _ vocabSize: Int) -> Void)?

    /// `tokenizerPath`: where the model's tokenizer is (its path), loaded on the first constrained request.
    public init(model: RunnableModel, blockSize: Int, scheduler: SchedulerConfig, seed: UInt64, tokenizerPath: String? = nil) {
        structured = StructuredDecoding(tokenizerPath: tokenizerPath)
        self.model = model
        self.blockSize = blockSize
        self.maxNumSeqs = scheduler.maxNumSeqs
        vocabSize = model.vocabSize
        logits = .allocate(capacity: scheduler.maxNumSeqs * model.vocabSize)
        sampler = Sampler(vocabSize: model.vocabSize)
        defaultGenerator = SamplingRNG(seed: seed)
        let n = scheduler.maxNumBatchedTokens
        batch.tokenIds.reserveCapacity(n); batch.positions.reserveCapacity(n); batch.slotMapping.reserveCapacity(n)
        batch.queryStartLoc.reserveCapacity(maxNumSeqs + 1); batch.contextLens.reserveCapacity(maxNumSeqs)
        batch.blockTables.reserveCapacity(maxNumSeqs); batch.logitsIndices.reserveCapacity(maxNumSeqs)
        sampleStates.reserveCapacity(maxNumSeqs)
    }

    deinit { logits.deallocate(); promptLogitsBuffer?.deallocate() }

    /// Requests whose state this runner holds (tests: finished requests must not linger).
    public var numCachedRequests: Int { requests.count }

    public func execute(_ s: SchedulerOutput) throws -> ModelRunnerOutput {
        try updateStates(s)
        if s.expertParallelIdle && s.isEmpty {
            try model.expertParallelIdleStep()
            var out = ModelRunnerOutput.empty
            out.expertParallel = model.expertParallelReport
            return out
        }
        guard let connector = kvConnector else {
            if s.isEmpty { return .empty }
            return try executeForward(s)
        }
        // vLLM's KV connector calls around the forward pass. The forward pass has no per-layer hook, so the
        // layer calls bracket the whole pass: loads complete before it, saves start after it.
        let meta = s.kvConnectorMetadata ?? KVConnectorMetadata()
        try connector.startLoadKV(meta)
        var out = ModelRunnerOutput.empty
        if !s.isEmpty {
            for layer in 0..<connectorLayers { connector.waitForLayerLoad(layer) }
            out = try executeForward(s)
            for layer in 0..<connectorLayers { try connector.saveKVLayer(layer, meta) }
        }
        try connector.waitForSave()
        out.kvConnectorOutput = connector.getFinished(s.finishedReqIds)
        return out
    }

    /// The KV connector (`--kv-transfer-config`), set by the engine once the cache exists.
    public var kvConnector: KVConnectorWorker?
    private var connectorLayers: Int { (model as? KVBlockStorage)?.kvNumLayers ?? 0 }

    private func executeForward(_ s: SchedulerOutput) throws -> ModelRunnerOutput {
        try prepareBatch(s)
        let logits = promptRows.isEmpty ? self.logits : logitsWithPromptRows(sampleRows: sampleStates.count)
        try model.forward(batch, hiddenIn: nil, hiddenOut: nil, logits: logits)
        let ids = sampleStates.map(\.reqId)
        logitsObserver?(ids, logits, vocabSize)
        var out = ModelRunnerOutput()
        out.reqIds = ids
        out.sampledTokenIds.reserveCapacity(ids.count)
        out.logprobs.reserveCapacity(ids.count)
        for (r, state) in sampleStates.enumerated() {
            let (token, lp) = sampler.sample(logits: logits + r * vocabSize, state: state)
            if let m = state.grammarMatcher { m.advance(token: token, isTerminator: state.isTerminator(token)) }
            out.sampledTokenIds.append(token)
            out.logprobs.append(lp)
        }
        if !promptRows.isEmpty { out.promptLogprobs = promptLogprobs(logits + sampleStates.count * vocabSize) }
        out.expertParallel = model.expertParallelReport
        return out
    }

    /// Applies the SchedulerOutput's request changes to the persistent states. The step comes from another
    /// process (the engine core): a diff that does not fit the states here is reported, not trusted.
    private func updateStates(_ s: SchedulerOutput) throws {
        for id in s.finishedReqIds { requests[id] = nil }
        for id in s.preemptedReqIds { requests[id] = nil }
        for d in s.scheduledNewReqs {
            let st = CachedRequestState(d, defaultGenerator: &defaultGenerator)
            if let spec = d.sampling.structuredOutputs { st.grammarMatcher = try structured.matcher(spec, replaying: st) }
            requests[d.reqId] = st
        }
        let c = s.scheduledCachedReqs
        let n = c.reqIds.count
        guard c.newTokenIds.count == n, c.newBlockIds.count == n, c.numComputedTokens.count == n else {
            throw ModelRunnerError.inconsistentStep(
                "the cached-request diff has \(n) ids but \(c.newTokenIds.count) token lists, "
                    + "\(c.newBlockIds.count) block lists and \(c.numComputedTokens.count) computed counts")
        }
        for k in c.reqIds.indices {
            guard let st = requests[c.reqIds[k]] else { throw ModelRunnerError.unknownRequest(c.reqIds[k]) }
            st.append(newTokenIds: c.newTokenIds[k], newBlockIds: c.newBlockIds[k], numComputedTokens: c.numComputedTokens[k])
        }
    }

    /// Flattens the scheduled tokens (new requests, then cached ones) into `batch`.
    private func prepareBatch(_ s: SchedulerOutput) throws {
        batch.tokenIds.removeAll(keepingCapacity: true)
        batch.positions.removeAll(keepingCapacity: true)
        batch.slotMapping.removeAll(keepingCapacity: true)
        batch.queryStartLoc.removeAll(keepingCapacity: true)
        batch.contextLens.removeAll(keepingCapacity: true)
        batch.blockTables.removeAll(keepingCapacity: true)
        batch.logitsIndices.removeAll(keepingCapacity: true)
        sampleStates.removeAll(keepingCapacity: true)
        promptRows.removeAll(keepingCapacity: true)
        promptBatchIndices.removeAll(keepingCapacity: true)
        batch.queryStartLoc.append(0)
        func add(_ id: String) throws {
            guard let st = requests[id] else { throw ModelRunnerError.unknownRequest(id) }
            guard let n = s.numScheduledTokens[id], n >= 0 else {
                throw ModelRunnerError.inconsistentStep("request \(id) is scheduled without a token count")
            }
            let start = st.numComputedTokens
            guard start >= 0, start + n <= st.tokenIds.count, (start + n + blockSize - 1) / blockSize <= st.blockIds.count else {
                throw ModelRunnerError.inconsistentStep(
                    "request \(id): positions \(start)..<\(start + n) exceed its \(st.tokenIds.count) tokens or \(st.blockIds.count) blocks"
                )
            }
            if st.sampling.promptLogprobs != nil { addPromptRows(st, start: start, count: n, firstIndex: batch.tokenIds.count) }
            for pos in start..<(start + n) {
                batch.tokenIds.append(Int32(st.tokenIds[pos]))
                batch.positions.append(Int32(pos))
                batch.slotMapping.append(st.blockIds[pos / blockSize] * Int32(blockSize) + Int32(pos % blockSize))
            }
            batch.queryStartLoc.append(Int32(batch.tokenIds.count))
            batch.contextLens.append(Int32(start + n))
            batch.blockTables.append(st.blockIds)
            st.numComputedTokens = start + n
            if start + n == st.tokenIds.count {  // reached the end: this request samples
                batch.logitsIndices.append(Int32(batch.tokenIds.count - 1))
                sampleStates.append(st)
            }
        }
        for d in s.scheduledNewReqs { try add(d.reqId) }
        for id in s.scheduledCachedReqs.reqIds { try add(id) }
    }
}
