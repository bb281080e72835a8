import CPagodaKernels

/// out[m, N] = x[m, K] · Wᵀ for a block-quantized weight matrix W [N, K] (`WeightDType.isQuantized`), as
/// llama.cpp computes it: activations quantized per 32-block to int8 (x̂ = d·q), integer dot products of the
/// weight codes with q (`vpdpbusd`), f32 accumulation of the per-group scaled sums. `Gemm.run` dispatches here.
///
/// Work: the activation quantization (once per call, `m` rows), then weight rows split over the pool in
/// multiples of 16; each task unpacks a 16-row × 512-weight tile once (transposed: one vector lane per row) and
/// applies it to every activation row, 8 at a time (`gemm_quant.c`), so one pass over the weights serves the
/// whole batch. With m ≤ 2 and Q8_0/Q4_0/Q4_1 on the VNNI kernel, each weight row is instead streamed once
/// against the activation rows with no unpack (batch-1 decode). The K-quants' unpack is vectorized only in the
/// VNNI kernel; the portable kernel is scalar (correct, ~6 GFLOP/s: a fallback, not a tuned path).
///
/// Workspace layout (bytes; grown only for a bigger m or K, never per call):
/// | part | size |
/// | --- | --- |
/// | xq: int8 activations [m, kp] | m·kp |
/// | xd: block scales [m, kp/32] f32 | m·kp/8 |
/// | xs16: scale × half-block sums [m, kp/16] f32 | m·kp/4 |
/// | xs32: scale × block sums [m, kp/32] f32 | m·kp/8 |
/// | per task scratch × tasks, 64-aligned | `pagoda_qgemm_scratch_bytes(m)` each |
/// kp = K rounded up to 64.
public enum QuantizedGemm {
    /// The inner kernel: AVX512-VNNI, or the portable one every CPU runs.
    public enum Kernel: Sendable {
        case avx512VNNI, portable
    }

    /// The fastest kernel this CPU runs.
    public static let bestKernel: Kernel = pagoda_cpu_has_avx512_vnni() != 0 ? .avx512VNNI : .portable

    /// - Parameters:
    ///   - x: activations [m, k], row stride `ldx` (default k); k = w.cols, a multiple of w.dtype.blockSize.
    ///   - out: [m, w.rows], row stride `ldo` (default w.rows).
    ///   - kernel: `.avx512VNNI` falls back to `.portable` on a CPU without it.
    public static func run(
        x: UnsafePointer<Float>, m: Int, ldx: Int? = nil, weight w: WeightMatrix, out: UnsafeMutablePointer<Float>,
        ldo: Int? = nil, workspace: AlignedBuffer<Float>, pool: ThreadPool, kernel: Kernel = bestKernel
    ) {
        precondition(w.dtype.isQuantized, "QuantizedGemm needs block-quantized weights, got \(w.dtype)")
        let k = w.cols, n = w.rows
        precondition(k % w.dtype.blockSize == 0, "\(k) columns are not whole \(w.dtype) blocks")
        let ldx = ldx ?? k, ldo = ldo ?? n
        if m == 0 || n == 0 { return }
        let kp = (k + 63) / 64 * 64
        let tiles = (n + 15) / 16
        let tasks = min(tiles, max(1, pool.threads * 4))
        let tilesPerTask = (tiles + tasks - 1) / tasks
        let taskCount = (tiles + tilesPerTask - 1) / tilesPerTask
        let scratchBytes = (Int(pagoda_qgemm_scratch_bytes(Int64(m))) + 63) / 64 * 64
        let activationBytes = (m * kp + m * kp / 2 + 63) / 64 * 64
        workspace.reserve((activationBytes + taskCount * scratchBytes) / 4)
        let raw = UnsafeMutableRawPointer(workspace.pointer)
        let xq = raw.assumingMemoryBound(to: Int8.self)
        let xd = (raw + m * kp).assumingMemoryBound(to: Float.self)
        let xs16 = xd + m * kp / 32
        let xs32 = xs16 + m * kp / 16
        let scratch = raw + activationBytes
        pagoda_quantize_activations_q8(x, Int64(ldx), Int64(m), Int64(k), Int64(kp), xq, xd, xs16, xs32)
        let vnni: Int32 = kernel == .avx512VNNI && bestKernel == .avx512VNNI ? 1 : 0
        let type = w.dtype.quantKernelType
        pool.parallelFor(taskCount) { t in
            let n0 = t * tilesPerTask * 16
            let n1 = min(n, n0 + tilesPerTask * 16)
            pagoda_qgemm_rows(
                type, w.base, Int64(w.rowBytes), Int64(k), xq, xd, xs16, xs32, Int64(m), Int64(kp), Int64(n0), Int64(n1),
                out, Int64(ldo), scratch + t * scratchBytes, vnni)
        }
    }
}

extension WeightDType {
    /// The block type number `gemm_quant.c` takes (`PAGODA_QTYPE_*`).
    var quantKernelType: Int32 {
        switch self {
        case .q8_0: return 0
        case .q4_0: return 1
        case .q4_1: return 2
        case .q4_K: return 3
        case .q5_K: return 4
        case .q6_K: return 5
        case .bf16, .f32: preconditionFailure("\(self) is not block-quantized")
        }
    }
}
