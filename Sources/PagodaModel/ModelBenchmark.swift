import Foundation
import PagodaKernels

/// Raw forward-pass speed of a `CausalLM` (no scheduler, no sampling beyond argmax): batched decode
/// steps over a filled KV cache, and a single-prompt prefill. For `pagoda bench` and the model bench.
public enum ModelBenchmark {
    public struct DecodeResult: Sendable, CustomStringConvertible {
        public var batchSize: Int
        public var steps: Int
        public var seconds: Double
        /// Generated tokens per second over the whole batch.
        public var tokensPerSecond: Double { Double(batchSize * steps) / seconds }
        public var msPerStep: Double { seconds * 1000 / Double(steps) }
        public var description: String {
            String(format: "batch %d: %.1f tokens/s, %.2f ms/step (%d steps)", batchSize, tokensPerSecond, msPerStep, steps)
        }
    }

    /// Runs `batchSize` sequences, each with a `contextLength`-token prefix already in the cache (filled
    /// by one prefill), then times `steps` decode steps of one token per sequence. Needs a KV cache of
    /// at least batchSize × ceil((contextLength + steps + warmup) / blockSize) blocks (allocated here).
    public static func decode(
        model: CausalLM, batchSize: Int, contextLength: Int = 16, steps: Int = 32, warmup: Int = 2, blockSize: Int = 16
    ) throws -> DecodeResult {
        let total = contextLength + steps + warmup
        let blocksPer = (total + blockSize - 1) / blockSize
        try model.allocateKVCache(numBlocks: batchSize * blocksPer, blockSize: blockSize)
        let tables = (0..<batchSize).map { r in (0..<blocksPer).map { Int32(r * blocksPer + $0) } }
        func slot(_ r: Int, _ p: Int) -> Int32 { tables[r][p / blockSize] * Int32(blockSize) + Int32(p % blockSize) }
        // Prefill every sequence with token ids 1, 2, ...
        var prefill = ForwardBatch(
            tokenIds: [], positions: [], slotMapping: [], queryStartLoc: [0], contextLens: [], blockTables: tables,
            logitsIndices: [])
        for r in 0..<batchSize {
            for p in 0..<contextLength {
                prefill.tokenIds.append(Int32(1 + (r + p) % 1000))
                prefill.positions.append(Int32(p))
                prefill.slotMapping.append(slot(r, p))
            }
            prefill.queryStartLoc.append(Int32(prefill.tokenIds.count))
            prefill.contextLens.append(Int32(contextLength))
            prefill.logitsIndices.append(Int32(prefill.tokenIds.count - 1))
        }
        let logits = UnsafeMutablePointer<Float>.allocate(capacity: batchSize * model.vocabSize)
        defer { logits.deallocate() }
        try model.forward(prefill, hiddenIn: nil, hiddenOut: nil, logits: logits)
        var step = ForwardBatch(
            tokenIds: [Int32](repeating: 0, count: batchSize), positions: [Int32](repeating: 0, count: batchSize),
            slotMapping: [Int32](repeating: 0, count: batchSize), queryStartLoc: (0...batchSize).map { Int32($0) },
            contextLens: [Int32](repeating: 0, count: batchSize), blockTables: tables,
            logitsIndices: (0..<batchSize).map { Int32($0) })
        var start = DispatchTime.now()
        for s in 0..<(warmup + steps) {
            if s == warmup { start = DispatchTime.now() }
            let p = contextLength + s
            for r in 0..<batchSize {
                // Greedy: the argmax of the previous step's logits.
                let best = Elementwise.argmax(logits + r * model.vocabSize, count: model.vocabSize)
                step.tokenIds[r] = Int32(best)
                step.positions[r] = Int32(p)
                step.slotMapping[r] = slot(r, p)
                step.contextLens[r] = Int32(p + 1)
            }
            try model.forward(step, hiddenIn: nil, hiddenOut: nil, logits: logits)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        return DecodeResult(batchSize: batchSize, steps: steps, seconds: seconds)
    }

    /// Seconds for one prefill of a `promptLength`-token prompt (after one warm-up run).
    public static func prefill(model: CausalLM, promptLength: Int, blockSize: Int = 16) throws -> Double {
        let blocks = (promptLength + blockSize - 1) / blockSize
        try model.allocateKVCache(numBlocks: blocks, blockSize: blockSize)
        let batch = ForwardBatch(
            tokenIds: (0..<promptLength).map { Int32(1 + $0 % 1000) }, positions: (0..<promptLength).map { Int32($0) },
            slotMapping: (0..<promptLength).map { Int32($0) }, queryStartLoc: [0, Int32(promptLength)],
            contextLens: [Int32(promptLength)], blockTables: [(0..<blocks).map { Int32($0) }],
            logitsIndices: [Int32(promptLength - 1)])
        let logits = UnsafeMutablePointer<Float>.allocate(capacity: model.vocabSize)
        defer { logits.deallocate() }
        try model.forward(batch, hiddenIn: nil, hiddenOut: nil, logits: logits)
        let start = DispatchTime.now()
        try model.forward(batch, hiddenIn: nil, hiddenOut: nil, logits: logits)
        return Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
    }
}
