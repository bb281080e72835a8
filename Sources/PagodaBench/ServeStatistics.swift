/// NumPy's summary statistics as vLLM applies them: an empty sample counts as the single value 0
/// (`np.mean(xs or 0)`), the standard deviation is the population one, percentiles interpolate linearly.
public enum ServeStatistics {
    public static func mean(_ xs: [Double]) -> Double {
        xs.isEmpty ? 0 : xs.reduce(0, +) / Double(xs.count)
    }

    public static func std(_ xs: [Double]) -> Double {
        guard xs.count > 1 else { return 0 }
        let m = mean(xs)
        return (xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(xs.count)).squareRoot()
    }

    public static func median(_ xs: [Double]) -> Double { percentile(xs, 50) }

    /// The p-th percentile (0...100), NumPy's default "linear" method.
    public static func percentile(_ xs: [Double], _ p: Double) -> Double {
        guard !xs.isEmpty else { return 0 }
        let sorted = xs.sorted()
        let rank = p / 100 * Double(sorted.count - 1)
        let low = Int(rank.rounded(.down))
        let high = min(low + 1, sorted.count - 1)
        let weight = rank - Double(low)
        return sorted[low] + (sorted[high] - sorted[low]) * weight
    }
}
