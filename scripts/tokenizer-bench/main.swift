// Encode throughput of PagodaTokenizer on one thread: documents encoded one by one (best of 3 runs).
// Built by run.sh with `swiftc -O` over Sources/PagodaTokenizer.
import Foundation

let args = CommandLine.arguments
let tok = try Tokenizer(directory: args[1])
let text = try String(contentsOfFile: args[2], encoding: .utf8)
let docs = text.components(separatedBy: "\n\u{1E}\n")
let nbytes = docs.reduce(0) { $0 + $1.utf8.count }
var best = Double.infinity
var n = 0
var sum = 0
for run in 0..<3 {
    let t0 = DispatchTime.now().uptimeNanoseconds
    n = 0
    sum = 0
    for d in docs {
        let ids = tok.encode(d, addSpecialTokens: false)
        n += ids.count
        sum += ids.reduce(0, +)
    }
    let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    best = min(best, dt)
    print(String(format: "pagoda run %d: %.3f s", run, dt))
}
let name = URL(fileURLWithPath: args[1]).lastPathComponent
print(String(format: "pagoda %@: %.2f MB/s, %.3f M tokens/s (best of 3; %ld tokens, id sum %ld)", name, Double(nbytes) / best / 1e6, Double(n) / best / 1e6, n, sum))
