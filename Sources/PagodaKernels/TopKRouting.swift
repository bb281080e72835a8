/// Top-k expert routing of a sparse mixture-of-experts layer, as Hugging Face's Mixtral and Qwen3-MoE
/// blocks compute it: softmax over the router logits in float32, the k most probable experts in
/// descending order of probability (`torch.topk`), their probabilities as weights, optionally
/// renormalized to sum 1 (Mixtral always; Qwen3-MoE when `norm_topk_prob`).
///
/// Ties go to the lower expert index. `ReferenceKernels.topKRouting` is the naive twin.
public enum TopKRouting {
    /// Routes `count` tokens.
    ///
    /// - logits: [count, numExperts] router logits; overwritten with their softmax, chosen entries then
    ///   set to -1 (probabilities are ≥ 0, so a chosen expert is never chosen twice).
    /// - experts: [count, topK] the chosen expert indices, most probable first.
    /// - weights: [count, topK] their routing weights.
    ///
    /// Requires 1 ≤ topK ≤ numExperts. Allocates nothing.
    /// - Complexity: O(count · numExperts · topK); k is small (2–8), so repeated max beats a sort.
    public static func run(
        logits: UnsafeMutablePointer<Float>, count: Int, numExperts e: Int, topK k: Int, renormalize: Bool,
        experts: UnsafeMutablePointer<Int32>, weights: UnsafeMutablePointer<Float>
    ) {
        precondition(k >= 1 && k <= e, "topK \(k) outside 1...\(e)")
        for t in 0..<count {
            let p = logits + t * e
            let chosen = experts + t * k, w = weights + t * k
            Elementwise.softmax(p, count: e)
            var total: Float = 0
            for slot in 0..<k {
                var best = 0
                var bestValue = -Float.infinity
                for j in 0..<e where p[j] > bestValue {
                    best = j
                    bestValue = p[j]
                }
                chosen[slot] = Int32(best)
                w[slot] = bestValue
                total += bestValue
                p[best] = -1
            }
            if renormalize {
                for slot in 0..<k { w[slot] /= total }
            }
        }
    }
}
