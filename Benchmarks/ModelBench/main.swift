// pagoda-model-bench: raw forward-pass speed of one model folder (no engine): batched decode tokens/s
// and prefill tokens/s. Build it optimized:
//   swift build -c release --product pagoda-model-bench
//   .build/release/pagoda-model-bench MODEL_DIR [--threads N] [--batch 1,8,32] [--steps 32] [--context 16] [--prefill 512]
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
do {
    let model = try CausalLM(directory: directory, threadPool: ThreadPool(threads: threads))
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
