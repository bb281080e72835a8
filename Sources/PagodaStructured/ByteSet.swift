/// A set of byte values (256 bits): what one grammar element accepts at one position.
public struct ByteSet: Hashable, Sendable {
    public var w0: UInt64 = 0, w1: UInt64 = 0, w2: UInt64 = 0, w3: UInt64 = 0

    public init() {}
    public init(_ b: UInt8) { insert(b) }
    public init(_ r: ClosedRange<UInt8>) { for b in r { insert(b) } }
    public init<S: Sequence>(bytes: S) where S.Element == UInt8 { for b in bytes { insert(b) } }

    public static let all: ByteSet = {
        var s = ByteSet(); s.w0 = .max; s.w1 = .max; s.w2 = .max; s.w3 = .max; return s
    }()

    @inline(__always) public func contains(_ b: UInt8) -> Bool {
        let bit = UInt64(1) << UInt64(b & 63)
        switch b >> 6 {
        case 0: return w0 & bit != 0
        case 1: return w1 & bit != 0
        case 2: return w2 & bit != 0
        default: return w3 & bit != 0
        }
    }

    public mutating func insert(_ b: UInt8) {
        let bit = UInt64(1) << UInt64(b & 63)
        switch b >> 6 {
        case 0: w0 |= bit
        case 1: w1 |= bit
        case 2: w2 |= bit
        default: w3 |= bit
        }
    }

    public mutating func formUnion(_ o: ByteSet) { w0 |= o.w0; w1 |= o.w1; w2 |= o.w2; w3 |= o.w3 }
    public func union(_ o: ByteSet) -> ByteSet { var s = self; s.formUnion(o); return s }
    public var inverted: ByteSet { var s = self; s.w0 = ~w0; s.w1 = ~w1; s.w2 = ~w2; s.w3 = ~w3; return s }
    public var isEmpty: Bool { (w0 | w1 | w2 | w3) == 0 }
    /// The ASCII part only (bytes below 0x80).
    public var ascii: ByteSet { var s = self; s.w2 = 0; s.w3 = 0; return s }
}
