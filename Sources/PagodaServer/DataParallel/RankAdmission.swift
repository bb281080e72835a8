import PagodaEngine

/// The head's rule for a remote engine core's hello (a pure check): which rank may join, serving what.
/// Returns the reason for a refusal, sent to the engine in a failure frame and logged by the head.
public struct RankAdmission: Sendable, Equatable {
    /// `--data-parallel-size`.
    public var size: Int
    /// The head's own ranks (never remote).
    public var localRanks: Range<Int>
    /// `ModelFingerprint` of the head's model, and its folder (for the message).
    public var modelIdentity: String
    public var model: String
    public var blockSize: Int

    public init(size: Int, localRanks: Range<Int>, modelIdentity: String, model: String, blockSize: Int) {
        self.size = size; self.localRanks = localRanks; self.modelIdentity = modelIdentity; self.model = model
        self.blockSize = blockSize
    }

    /// Nil when `hello` may join; `isLive(r)` says whether rank r is joined and serving (or joining) now.
    public func refusal(_ hello: EngineHandshake, isLive: (Int) -> Bool) -> String? {
        let r = hello.dataParallelRank
        guard hello.protocolVersion == EngineRPCProtocol.version else {
            return "engine core speaks protocol v\(hello.protocolVersion), the head v\(EngineRPCProtocol.version)"
        }
        guard (0..<size).contains(r) else {
            return "data-parallel rank \(r) is out of range: the deployment has ranks 0..<\(size)"
        }
        guard hello.dataParallelSize == size else {
            return "rank \(r) was started with --data-parallel-size \(hello.dataParallelSize); the head runs \(size)"
        }
        guard !localRanks.contains(r) else {
            return "data-parallel rank \(r) belongs to the head's local ranks \(localRanks.lowerBound)..<\(localRanks.upperBound)"
        }
        guard hello.modelIdentity == modelIdentity else {
            return
                "rank \(r) serves a different model: \(hello.model) (\(hello.modelIdentity)); the head serves \(model) (\(modelIdentity))"
        }
        guard hello.blockSize == blockSize else {
            return "rank \(r) uses KV blocks of \(hello.blockSize) tokens; the head \(blockSize) (--block-size must match)"
        }
        guard !isLive(r) else { return "data-parallel rank \(r) has already joined and is live" }
        return nil
    }
}
