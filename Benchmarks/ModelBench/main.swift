// pagoda-model-bench: raw forward-pass speed of one model folder (no engine): batched decode tokens/s
// and prefill tokens/s. Build it optimized:
//   swift build -c release --product pagoda-model-bench
//   .build/release/pagoda-model-bench MODEL_DIR [--threads N] [--batch 1,8,32] [--steps 32] [--context 16] [--prefill 512] [--precision bf16]
//   .build/release/pagoda-model-bench - --gemm 32x4864x896 [--dtype f32|q8_0|q8_0t|q4_0|q4_0t|q6_k|q6_kt] [--precision bf16] [--reps 50] [--threads N]
import Foundation
import PagodaKernels
import PagodaModel

var args = Array(CommandLine.arguments.dropFirst())
guard let directory = args.first, !directory.hasPrefix("--") else {
    FileHandle.standardError.write(Data("usage: pagoda-model-bench MODEL_DIR [--threads N] [--batch 1,8] [--steps 32] [--context 16] [--prefill 512]\n".utf8))
    exit(2)
}
args.removeFirst()
var options: [String: String] = [:]
while args.count >= 2, args[0].hasPrefix("--") {
    options[String(args[0].dropFirst(2))] = args[1]
    args.removeFirst(2)
}
let threads = Int(options["threads"] ?? "") ?? ThreadPool.availableCPUs
let batches = (options["batch"] ?? "1,8").split(separator: ",").compactMap { Int($0) }
let steps = Int(options["steps"] ?? "") ?? 32
let context = Int(options["context"] ?? "") ?? 16
let prefillLength = Int(options["prefill"] ?? "") ?? 0
let precision: GemmPrecision = options["precision"] == "bf16" ? .bfloat16 : .float32
/// `--gemm MxNxK [--dtype f32|q8_0|q8_0t|q4_0|q4_0t|q4_k|q5_k|q6_k|q6_kt] [--precision bf16] [--reps R]` (MODEL_DIR ignored, e.g. `-`): one GEMM shape of bf16 (or f32)
/// weights in anonymous memory, repeated; prints ms, GFLOP/s and the weight read rate. Small shapes stay in cache.
if let shape = options["gemm"] {
    let d = shape.split(separator: "x").compactMap { Int($0) }
    let (m, n, k) = (d[0], d[1], d[2])
    let w = UnsafeMutablePointer<UInt16>.allocate(capacity: n * k)
    for i in 0..<(n * k) { w[i] = UInt16(0x3F80 + (i % 13)) }
    let x = UnsafeMutablePointer<Float>.allocate(capacity: m * k)
    for i in 0..<(m * k) { x[i] = Float(i % 7) * 0.1 }
    let out = UnsafeMutablePointer<Float>.allocate(capacity: m * n)
    let pool = ThreadPool(threads: threads)
    let ws = AlignedBuffer<Float>()
    // --dtype q8_0|q4_0: the f32 weights quantized (block-quantized GEMM, int8 activations).
    // q4_0t, q8_0t: the blocks copied into 16-row tiles as a model load does on a VNNI CPU (`BlockTiles`).
    let quantized: WeightDType? = ["q8_0": .q8_0, "q8_0t": .q8_0, "q4_0": .q4_0, "q4_0t": .q4_0][options["dtype"] ?? ""]
    let f32 = options["dtype"] == "f32" || quantized != nil
    let wf = UnsafeMutablePointer<Float>.allocate(capacity: f32 ? n * k : 1)
    if f32 { for i in 0..<(n * k) { wf[i] = Float(i % 13) * 0.01 } }
    let floatMatrix = f32 ? WeightMatrix(base: UnsafeRawPointer(wf), rows: n, cols: k, dtype: .f32)
        : WeightMatrix(base: UnsafeRawPointer(w), rows: n, cols: k, dtype: .bf16)
    let quantizedWeights = quantized.map { QuantizedWeights(quantizing: floatMatrix, to: $0) }
    // --dtype q4_k|q5_k|q6_k: random codes with every f16 scale field set to 0.01 (speed only, values meaningless).
    // q6_kt: the Q6_K matrix unpacked into tiles as a model load does on a VNNI CPU (`UnpackedTiles`).
    let kQuant: WeightDType? = ["q4_k": .q4_K, "q5_k": .q5_K, "q6_k": .q6_K, "q6_kt": .q6_K][options["dtype"] ?? ""]
    var kMatrix: WeightMatrix? = nil
    if let kq = kQuant {
        let bytes = kq.bytes(elements: k) * n
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        var seed: UInt64 = 1
        for i in 0..<bytes { seed = seed &* 6364136223846793005 &+ 1442695040888963407; raw.storeBytes(of: UInt8(truncatingIfNeeded: seed >> 33), toByteOffset: i, as: UInt8.self) }
        let half: UInt16 = 0x211F  // 0.01
        for b in 0..<(bytes / kq.blockBytes) {
            let blk = raw + b * kq.blockBytes
            if kq == .q6_K { blk.storeBytes(of: half, toByteOffset: 208, as: UInt16.self) } else {
                blk.storeBytes(of: half, toByteOffset: 0, as: UInt16.self)
                blk.storeBytes(of: half, toByteOffset: 2, as: UInt16.self)
            }
        }
        kMatrix = WeightMatrix(base: UnsafeRawPointer(raw), rows: n, cols: k, dtype: kq)
    }
    let tiles = ["q4_0t", "q8_0t"].contains(options["dtype"] ?? "") ? quantizedWeights.map { BlockTiles(packing: $0.matrix, pool: pool) } : nil
    let unpacked = options["dtype"] == "q6_kt" ? kMatrix.map { UnpackedTiles(packing: $0, pool: pool) } : nil
    let wm = unpacked?.matrix ?? kMatrix ?? tiles?.matrix ?? quantizedWeights?.matrix ?? floatMatrix
    let reps = Int(options["reps"] ?? "") ?? 50
    for _ in 0..<3 { Gemm.run(x: x, m: m, weight: wm, out: out, workspace: ws, pool: pool, precision: precision) }
    let t0 = DispatchTime.now().uptimeNanoseconds
    for _ in 0..<reps { Gemm.run(x: x, m: m, weight: wm, out: out, workspace: ws, pool: pool, precision: precision) }
    let s = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 / Double(reps)
    print(String(format: "gemm %dx%dx%d: %.3f ms, %.1f GFLOP/s, weights %.1f GB/s", m, n, k, s * 1000,
                 2 * Double(m * n * k) / s / 1e9, Double(wm.byteCount) / s / 1e9))
    exit(0)
}

do {
    let model = try CausalLM(directory: directory, threadPool: ThreadPool(threads: threads))
    model.precision = precision
    let gb = Double(model.weightBytes) / 1e9
    print(String(format: "model %@ (%@), %d threads, %.3f GB of weights read per step", directory, model.config.modelType, threads, gb))
    for b in batches {
        let r = try ModelBenchmark.decode(model: model, batchSize: b, contextLength: context, steps: steps)
        let bandwidth = gb * Double(steps) / r.seconds
        print(String(format: "decode %@ | weight read rate %.1f GB/s", r.description, bandwidth))
    }
    if prefillLength > 0 {
        let s = try ModelBenchmark.prefill(model: model, promptLength: prefillLength)
        print(String(format: "prefill %d tokens: %.3f s, %.1f tokens/s", prefillLength, s, Double(prefillLength) / s))
    }
} catch {
    FileHandle.standardError.write(Data("pagoda-model-bench: \(error)\n".utf8))
    exit(1)
}
