/// Stop strings on a growing output text, with vLLM's semantics (`vllm/v1/engine/detokenizer.py`):
/// after each token only the tail that the new text could complete is searched; a match truncates
/// the text before the stop string (or after it with `include_stop_str_in_output`). While
/// streaming, the last `max(len(stop)) - 1` characters are held back, since they might still
/// become the start of a stop string. Lengths count Unicode scalars (Python's `len`).
public struct StopStringChecker {
    public let stops: [[Unicode.Scalar]]
    public let includeStopStrInOutput: Bool
    /// Characters held back from streaming while not finished.
    public let bufferLength: Int

    public init(stops: [String], includeStopStrInOutput: Bool) {
        self.stops = stops.filter { !$0.isEmpty }.map { Array($0.unicodeScalars) }
        self.includeStopStrInOutput = includeStopStrInOutput
        let longest = self.stops.map(\.count).max() ?? 0
        self.bufferLength = includeStopStrInOutput || longest == 0 ? 0 : longest - 1
    }

    /// Looks for a stop string in `text` whose match involves at least one of the last
    /// `newCount` scalars. Returns the stop string's index in `stops` and the length `text` must
    /// be cut to.
    public func check(_ text: [Unicode.Scalar], newCount: Int) -> (stopIndex: Int, truncateTo: Int)? {
        guard newCount > 0 else { return nil }
        for (k, stop) in stops.enumerated() {
            // A match must end inside the new text: start >= text.count - newCount - stop.count + 1.
            let lowest = max(0, text.count - newCount - stop.count + 1)
            let highest = text.count - stop.count
            guard highest >= lowest else { continue }
            var start = lowest
            while start <= highest {
                var j = 0
                while j < stop.count, text[start + j] == stop[j] { j += 1 }
                if j == stop.count {
                    return (k, includeStopStrInOutput ? start + stop.count : start)
                }
                start += 1
            }
        }
        return nil
    }
}
