/// `GET /health` and `GET /metrics` of `pagoda disagg-proxy`: healthy while at least one prefill and one
/// decode server take requests; the metrics of both balancers, each series labelled `role`.
enum DisaggStatus {
    static func health(prefill: SharedBalancer, decode: SharedBalancer) -> (json: String, ok: Bool) {
        let (p, pt) = prefill.withLock { ($0.healthyCount, $0.backends.count) }
        let (d, dt) = decode.withLock { ($0.healthyCount, $0.backends.count) }
        let ok = p > 0 && d > 0
        let json =
            #"{"status":"\#(ok ? "ok" : "unavailable")","prefill_instances":\#(pt),"healthy_prefill_instances":\#(p),"#
            + #""decode_instances":\#(dt),"healthy_decode_instances":\#(d)}"#
        return (json, ok)
    }

    /// Both balancers' exposition, merged so that each metric family appears once (its HELP and TYPE, then
    /// the prefill and the decode series), as the text format requires.
    static func metrics(prefill: SharedBalancer, decode: SharedBalancer) -> String {
        let texts = [
            prefill.withLock { ProxyMetrics.render($0, role: "prefill") },
            decode.withLock { ProxyMetrics.render($0, role: "decode") },
        ]
        var order: [String] = []
        var header: [String: [Substring]] = [:]
        var samples: [String: [Substring]] = [:]
        for text in texts {
            var family = ""
            for line in text.split(separator: "\n") {
                if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") {
                    family = String(line.dropFirst(7).prefix { $0 != " " })
                    if header[family] == nil { order.append(family); header[family] = [] }
                    if header[family]!.count < 2 && !header[family]!.contains(line) { header[family]!.append(line) }
                } else {
                    samples[family, default: []].append(line)
                }
            }
        }
        var out = ""
        for f in order {
            for l in header[f]! { out += l + "\n" }
            for l in samples[f] ?? [] { out += l + "\n" }
        }
        return out
    }
}
