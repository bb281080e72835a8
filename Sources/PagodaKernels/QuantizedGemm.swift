import CPagodaKernels

/// out[m, N] = x[m, K] · Wᵀ for a block-quantized weight matrix W [N, K] (`WeightDType.isQuantized`), as
/// llama.cpp computes it: activations quantized per 32-block to int8 (x̂ = d·q) exactly as ggml's Q8_0/Q8_1 (the
/// same codes, f16 scales, and for Q4_1 weights the f16 block sum), integer dot products of the weight codes with q
/// (`vpdpbusd`), f32 accumulation of the per-group scaled sums. `Gemm.run` dispatches here.
///
/// Work: the activation quantization (once per call, `m` rows, over the pool when large), then weight rows split over the pool in
/// multiples of 16; each task unpacks a 16-row × 512-weight tile once (transposed: one vector lane per row) and
/// applies it to every activation row, 8 at a time (`gemm_quant.c`), so one pass over the weights serves the
/// whole batch. With m ≤ 2 and Q8_0/Q4_0/Q4_1/Q6_K on the VNNI kernel, each weight row is instead streamed once
/// against the activation rows with no unpack (batch-1 decode); for Q4_0/Q4_1 against a plan of each activation row
/// built once per call here (`pagoda_qgemv_plan`: the activation codes laid out at the weights' byte positions), and
/// Q4_0 matrices that carry a tile copy (`BlockTiles`, made at load) are read from it, 16 rows per vector, at every m,
/// Q8_0 ones at m ≤ 2.
/// Other types that carry one (`UnpackedTiles`: Q6_K) are read from it at m > 2, with no per-call unpack. The
/// K-quants' unpack is vectorized only in the VNNI kernel; the portable kernel is scalar (correct, ~6 GFLOP/s: a
/// fallback, not a tuned path).
///
/// Workspace layout (bytes; grown only for a bigger m or K, never per call):
/// | part | size |
/// | --- | --- |
/// | xq: int8 activations [m, kp] | m·kp |
/// | xd: block scales [m, kp/32] f32 | m·kp/8 |
/// | xs16: scale × half-block sums [m, kp/16] f32 | m·kp/4 |
/// | xs32: scale × block sums [m, kp/32] f32 | m·kp/8 |
/// | xs1: f16(unrounded scale × block sum) [m, kp/32] f32 (Q8_1's `s`) | m·kp/8 |
/// | xneg: −8 and −128 × block sum [2, m, kp/32], then −32 × half-block sum [m, kp/16], int32 (Q4_0's, Q8_0's and Q6_K's offsets) | m·kp/2 |
/// | batch-1 plans, one per Q4_0/Q4_1 type among the products (m ≤ 2, VNNI), 64-aligned | `pagoda_qgemv_plan_bytes` each |
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
        run(x: x, m: m, ldx: ldx, Product(weight: w, out: out, ldo: ldo), workspace: workspace, pool: pool, kernel: kernel)
    }

    /// One weight matrix of a `run(x:m:ldx:_:_:_:workspace:pool:kernel:)` call and where its product goes.
    public struct Product {
        public var weight: WeightMatrix
        public var out: UnsafeMutablePointer<Float>
        /// Row stride of `out` (default weight.rows).
        public var ldo: Int

        public init(weight: WeightMatrix, out: UnsafeMutablePointer<Float>, ldo: Int? = nil) {
            self.weight = weight
            self.out = out
            self.ldo = ldo ?? weight.rows
        }
    }

    /// Up to three products of the same activations (q/k/v, gate/up): the activations are quantized once and the
    /// weight tiles of all of them are split over the pool in one dispatch (one wait instead of three). Each
    /// matrix may have its own block type; all have `a.weight.cols` columns.
    public static func run(
        x: UnsafePointer<Float>, m: Int, ldx: Int? = nil, _ a: Product, _ b: Product? = nil, _ c: Product? = nil,
        workspace: AlignedBuffer<Float>, pool: ThreadPool, kernel: Kernel = bestKernel
    ) {
        let k = a.weight.cols
        for i in 0..<3 {
            guard let p = i == 0 ? a : (i == 1 ? b : c) else { continue }
            precondition(p.weight.dtype.isQuantized, "QuantizedGemm needs block-quantized weights, got \(p.weight.dtype)")
            precondition(p.weight.cols == k, "products of one activation matrix need the same \(k) columns")
            precondition(k % p.weight.dtype.blockSize == 0, "\(k) columns are not whole \(p.weight.dtype) blocks")
        }
        let ldx = ldx ?? k
        let tiles = (a.weight.rows + 15) / 16 + ((b?.weight.rows ?? 0) + 15) / 16 + ((c?.weight.rows ?? 0) + 15) / 16
        if m == 0 || tiles == 0 { return }
        let kp = (k + 63) / 64 * 64
        let tasks = min(tiles, max(1, pool.threads * 4))
        let tilesPerTask = (tiles + tasks - 1) / tasks
        let taskCount = (tiles + tilesPerTask - 1) / tilesPerTask
        let scratchBytes = (Int(pagoda_qgemm_scratch_bytes(Int64(m))) + 63) / 64 * 64
        let activationBytes = (m * kp + m * kp / 2 + m * kp / 8 + m * kp / 2 + 63) / 64 * 64
        let vnni: Int32 = kernel == .avx512VNNI && bestKernel == .avx512VNNI ? 1 : 0
        // Batch-1 plans (Q4_0 / Q4_1 at m ≤ 2, VNNI kernel): one per block type among the products (q/k/v of one
        // type share it), built once here.
        // Q4_0 with tiles (`BlockTiles`) on the VNNI kernel takes the tiled kernels (batch-1 at m ≤ 2), no plan.
        let tiledM = m <= 2 && vnni != 0
        func needsPlan(_ p: Product?, _ d: WeightDType) -> Bool {
            guard let p, p.weight.dtype == d else { return false }
            return !(tiledM && p.weight.tiles != nil && d == .q4_0)
        }
        func planBytes(_ d: WeightDType) -> Int {
            guard vnni != 0, needsPlan(a, d) || needsPlan(b, d) || needsPlan(c, d) else { return 0 }
            return (Int(pagoda_qgemv_plan_bytes(d.quantKernelType, Int64(k), Int64(m))) + 63) / 64 * 64
        }
        let q4_0Plan = planBytes(.q4_0), q4_1Plan = planBytes(.q4_1)
        let plansTotal = q4_0Plan + q4_1Plan
        workspace.reserve((activationBytes + plansTotal + taskCount * scratchBytes) / 4)
        let raw = UnsafeMutableRawPointer(workspace.pointer)
        let xq = raw.assumingMemoryBound(to: Int8.self)
        let xd = (raw + m * kp).assumingMemoryBound(to: Float.self)
        let xs16 = xd + m * kp / 32
        let xs32 = xs16 + m * kp / 16
        let xs1 = xs32 + m * kp / 32
        let xneg = UnsafeMutableRawPointer(xs1 + m * kp / 32).assumingMemoryBound(to: Int32.self)
        let plans = raw + activationBytes
        let scratch = plans + plansTotal
        // The activation quantization: rows over the pool when there are enough of them (batched decode, prefill).
        let quantizeTasks = m * k >= 32768 ? min(m, pool.threads * 2) : 1
        pool.parallelFor(quantizeTasks) { t in
            let r0 = t * m / quantizeTasks, r1 = (t + 1) * m / quantizeTasks
            pagoda_quantize_activations_q8(
                x, Int64(ldx), Int64(m), Int64(r0), Int64(r1), Int64(k), Int64(kp), xq, xd, xs16, xs32, xs1, xneg)
        }
        if q4_0Plan > 0 {
            pagoda_qgemv_plan(WeightDType.q4_0.quantKernelType, Int64(k), Int64(m), xq, xd, xs32, xs1, Int64(kp), plans)
        }
        if q4_1Plan > 0 {
            pagoda_qgemv_plan(
                WeightDType.q4_1.quantKernelType, Int64(k), Int64(m), xq, xd, xs32, xs1, Int64(kp), plans + q4_0Plan)
        }
        pool.parallelFor(taskCount) { t in
            // This task's tiles [t0, t1) of the concatenation a | b | c, cut at the matrices' borders.
            let t0 = t * tilesPerTask, t1 = min(tiles, t0 + tilesPerTask)
            var first = 0
            for i in 0..<3 {  // no array of the three: nothing allocated per call
                guard let p = i == 0 ? a : (i == 1 ? b : c) else { continue }
                let count = (p.weight.rows + 15) / 16
                let lo = max(t0, first), hi = min(t1, first + count)
                if lo < hi, tiledM, let tiles = p.weight.tiles, p.weight.dtype == .q8_0 {  // `BlockTiles`, batch 1
                    let w = p.weight
                    for r in 0..<m {
                        pagoda_q8_0_tiles_gemv(
                            tiles, Int64(w.rows), Int64(k), xq + r * kp, xd + r * (kp / 32), xneg + (m + r) * (kp / 32),
                            Int64(lo - first), Int64(hi - first), p.out + r * p.ldo)
                    }
                } else if lo < hi, vnni != 0, let tiles = p.weight.tiles, !BlockTiles.handles(p.weight.dtype), m > 2 {  // `UnpackedTiles`
                    let w = p.weight
                    pagoda_qtiles_gemm(
                        w.dtype.quantKernelType, tiles, Int64(w.rows), Int64(k), xq, xd, xs16, xs32, xs1, xneg, Int64(m),
                        Int64(kp), Int64(lo - first), Int64(hi - first), p.out, Int64(p.ldo), scratch + t * scratchBytes)
                } else if lo < hi, vnni != 0, let tiles = p.weight.tiles, p.weight.dtype == .q4_0 {  // `BlockTiles`
                    let w = p.weight
                    if tiledM {
                        for r in 0..<m {
                            pagoda_q4_0_tiles_gemv(
                                tiles, Int64(w.rows), Int64(k), xq + r * kp, xd + r * (kp / 32), xneg + r * (kp / 32),
                                Int64(lo - first), Int64(hi - first), p.out + r * p.ldo)
                        }
                    } else {
                        pagoda_q4_0_tiles_gemm(
                            tiles, Int64(w.rows), Int64(k), xq, xd, xneg, Int64(m), Int64(kp), Int64(lo - first), Int64(hi - first),
                            p.out, Int64(p.ldo), scratch + t * scratchBytes)
                    }
                } else if lo < hi {
                    let w = p.weight
                    let plan: UnsafeRawPointer? =
                        w.dtype == .q4_0 && q4_0Plan > 0
                        ? UnsafeRawPointer(plans) : (w.dtype == .q4_1 && q4_1Plan > 0 ? UnsafeRawPointer(plans + q4_0Plan) : nil)
                    pagoda_qgemm_rows(
                        w.dtype.quantKernelType, w.base, Int64(w.rowBytes), Int64(k), xq, xd, xs16, xs32, xs1, xneg, Int64(m),
                        Int64(kp), Int64((lo - first) * 16), Int64(min(w.rows, (hi - first) * 16)), p.out, Int64(p.ldo),
                        scratch + t * scratchBytes, plan, vnni)
                }
                first += count
            }
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
