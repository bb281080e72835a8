import PagodaKernels
import PagodaModel

/// Drives a model like a minimal engine for tests: all prompts in one continuously batched run over a
/// paged KV cache (blocks handed out in order), prefill in chunks of `chunkSize` tokens per request
/// per step (nil = whole prompt), then greedy (argmax) decode. Calls `onLogits(request, step, logits)`
/// with each step's full logits row before taking its argmax.
public struct GreedyPagedRunner {
    public var blockSize: Int
    public var chunkSize: Int?

    public init(blockSize: Int = 16, chunkSize: Int? = nil) {
        self.blockSize = blockSize
        self.chunkSize = chunkSize
    }

    /// Blocks needed for `prompts` plus `steps` generated tokens.
    public func blocksNeeded(prompts: [[Int]], steps: Int) -> Int {
        prompts.map { ($0.count + steps + blockSize - 1) / blockSize }.reduce(0, +)
    }

    /// Returns the generated ids per prompt (`steps` each).
    public func run(
        prompts: [[Int]], steps: Int, vocabSize: Int, forward: (ForwardBatch) throws -> [Float],
        onLogits: (Int, Int, UnsafeBufferPointer<Float>) -> Void = { _, _, _ in }
    ) throws -> [[Int]] {
        var nextBlock: Int32 = 0
        var tables: [[Int32]] = prompts.map { _ in [] }
        var sequences = prompts  // prompt + generated so far
        var computed = [Int](repeating: 0, count: prompts.count)  // tokens whose K/V are cached
        var generated: [[Int]] = prompts.map { _ in [] }
        while generated.contains(where: { $0.count < steps }) {
            var batch = ForwardBatch(
                tokenIds: [], positions: [], slotMapping: [], queryStartLoc: [0], contextLens: [], blockTables: [],
                logitsIndices: [])
            var sampledRequests: [Int] = []
            var members: [Int] = []
            for r in prompts.indices where generated[r].count < steps {
                let pending = sequences[r].count - computed[r]
                let take = min(pending, chunkSize ?? pending)
                for i in 0..<take {
                    let pos = computed[r] + i
                    while tables[r].count <= pos / blockSize {
                        tables[r].append(nextBlock)
                        nextBlock += 1
                    }
                    batch.tokenIds.append(Int32(sequences[r][pos]))
                    batch.positions.append(Int32(pos))
                    batch.slotMapping.append(tables[r][pos / blockSize] * Int32(blockSize) + Int32(pos % blockSize))
                }
                computed[r] += take
                batch.queryStartLoc.append(Int32(batch.tokenIds.count))
                batch.contextLens.append(Int32(computed[r]))
                batch.blockTables.append(tables[r])
                members.append(r)
                if computed[r] == sequences[r].count {
                    batch.logitsIndices.append(Int32(batch.tokenIds.count - 1))
                    sampledRequests.append(r)
                }
            }
            _ = members
            let logits = try forward(batch)
            for (j, r) in sampledRequests.enumerated() {
                try logits.withUnsafeBufferPointer { all in
                    let row = UnsafeBufferPointer(rebasing: all[(j * vocabSize)..<((j + 1) * vocabSize)])
                    onLogits(r, generated[r].count, row)
                    let best = Elementwise.argmax(row.baseAddress!, count: vocabSize)
                    guard row[best].isFinite else { throw ModelLoadError.invalidBatch(reason: "non-finite logits") }
                    generated[r].append(best)
                    sequences[r].append(best)
                }
            }
        }
        return generated
    }
}
