/// When each request is sent, in seconds after the start (vLLM's `get_request`).
///
/// `--request-rate inf` sends everything at once. A finite rate draws gaps from a gamma distribution with shape
/// `--burstiness` and mean 1/rate (burstiness 1 is a Poisson process; below 1 burstier, above 1 more even), then
/// rescales the cumulative times so the last request goes out at exactly `count / rate`, as vLLM does to keep
/// throughput comparable across seeds. Infinite burstiness gives evenly spaced requests.
public enum ServeArrivalSchedule {
    public static func delays(count: Int, requestRate: Double, burstiness: Double, rng: inout BenchRandom) -> [Double] {
        precondition(burstiness > 0 && requestRate > 0)
        guard count > 0 else { return [] }
        if requestRate == .infinity { return Array(repeating: 0, count: count) }
        var delays: [Double] = []
        delays.reserveCapacity(count)
        var total = 0.0
        for _ in 0..<count {
            if burstiness == .infinity {
                total += 1 / requestRate
            } else {
                total += rng.gamma(shape: burstiness, scale: 1 / (requestRate * burstiness))
            }
            delays.append(total)
        }
        if total > 0 {
            let factor = (Double(count) / requestRate) / total
            for i in delays.indices { delays[i] *= factor }
        }
        return delays
    }
}
