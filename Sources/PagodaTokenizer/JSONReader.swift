import Foundation

/// An object whose keys must be kept exactly as written: Swift `String` equality is canonical equivalence, so a
/// `[String: Any]` would merge vocab entries such as "ά" (U+03AC) and "ά" (U+1F71), which are different tokens.
final class JSONPairs {
    let pairs: [(String, Any)]
    init(_ pairs: [(String, Any)]) { self.pairs = pairs }
}

/// The package's one JSON reader (RFC 8259, strict; nesting limited to `maxDepth`), producing Foundation-style
/// values (`[String: Any]`, `[Any]`, `String`, `NSNumber` — Int for integers, Double for numbers with a fraction
/// or exponent —, `Bool`, `NSNull`), except that objects under a key listed in `exactKeys`, or every object when
/// `orderedObjects` is set, come back as `JSONPairs` in document order. tokenizer.json and the chat template's
/// JSON values (`JinjaValue(json:)`) both go through it.
struct JSONReader {
    /// Deeper nesting is an error rather than a stack overflow on hostile input.
    static let maxDepth = 256

    struct ParseError: Error, CustomStringConvertible {
        let offset: Int
        let message: String
        var description: String { "\(message) at byte \(offset)" }
    }

    static func parse(_ data: Data, exactKeys: Set<String> = [], orderedObjects: Bool = false) throws -> Any {
        try data.withUnsafeBytes { raw -> Any in
            var r = JSONReader(bytes: raw.bindMemory(to: UInt8.self), exactKeys: exactKeys)
            r.skipSpace()
            let v = try r.value(exact: orderedObjects, ordered: orderedObjects, depth: 0)
            r.skipSpace()
            if r.pos != r.bytes.count { throw ParseError(offset: r.pos, message: "unexpected data after the top-level value") }
            return v
        }
    }

    private let bytes: UnsafeBufferPointer<UInt8>
    private let exactKeys: Set<String>
    private var pos = 0

    private init(bytes: UnsafeBufferPointer<UInt8>, exactKeys: Set<String>) {
        self.bytes = bytes
        self.exactKeys = exactKeys
    }

    private mutating func skipSpace() {
        while pos < bytes.count {
            let c = bytes[pos]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { pos += 1 } else { break }
        }
    }

    private func fail(_ m: String) -> ParseError {
        ParseError(offset: pos, message: pos >= bytes.count ? "unexpected end of data" : m)
    }

    private mutating func expect(_ c: UInt8) throws {
        guard pos < bytes.count, bytes[pos] == c else { throw fail("expected '\(Character(Unicode.Scalar(c)))'") }
        pos += 1
    }

    /// `exact`: this value, if an object, keeps its pairs; `ordered`: every object below does too.
    private mutating func value(exact: Bool, ordered: Bool, depth: Int) throws -> Any {
        guard pos < bytes.count else { throw fail("") }
        guard depth < Self.maxDepth else { throw fail("nesting deeper than \(Self.maxDepth) levels") }
        switch bytes[pos] {
        case UInt8(ascii: "{"): return try object(exact: exact || ordered, ordered: ordered, depth: depth)
        case UInt8(ascii: "["): return try array(ordered: ordered, depth: depth)
        case UInt8(ascii: "\""): return try string()
        case UInt8(ascii: "t"): try literal("true"); return true
        case UInt8(ascii: "f"): try literal("false"); return false
        case UInt8(ascii: "n"): try literal("null"); return NSNull()
        default: return try number()
        }
    }

    private mutating func literal(_ s: String) throws {
        for c in s.utf8 {
            guard pos < bytes.count, bytes[pos] == c else { throw fail("invalid literal") }
            pos += 1
        }
    }

    private mutating func object(exact: Bool, ordered: Bool, depth: Int) throws -> Any {
        pos += 1
        var dict: [String: Any] = [:]
        var pairs: [(String, Any)] = []
        skipSpace()
        if pos < bytes.count && bytes[pos] == UInt8(ascii: "}") {
            pos += 1
            return exact ? JSONPairs([]) : dict
        }
        while true {
            skipSpace()
            let key = try string()
            skipSpace()
            try expect(UInt8(ascii: ":"))
            skipSpace()
            let v = try value(exact: exactKeys.contains(key), ordered: ordered, depth: depth + 1)
            if exact { pairs.append((key, v)) } else { dict[key] = v }
            skipSpace()
            guard pos < bytes.count else { throw fail("") }
            if bytes[pos] == UInt8(ascii: ",") {
                pos += 1
            } else if bytes[pos] == UInt8(ascii: "}") {
                pos += 1
                return exact ? JSONPairs(pairs) : dict
            } else {
                throw fail("expected ',' or '}'")
            }
        }
    }

    private mutating func array(ordered: Bool, depth: Int) throws -> Any {
        pos += 1
        var out: [Any] = []
        skipSpace()
        if pos < bytes.count && bytes[pos] == UInt8(ascii: "]") {
            pos += 1
            return out
        }
        while true {
            skipSpace()
            out.append(try value(exact: false, ordered: ordered, depth: depth + 1))
            skipSpace()
            guard pos < bytes.count else { throw fail("") }
            if bytes[pos] == UInt8(ascii: ",") {
                pos += 1
            } else if bytes[pos] == UInt8(ascii: "]") {
                pos += 1
                return out
            } else {
                throw fail("expected ',' or ']'")
            }
        }
    }

    private mutating func string() throws -> String {
        guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else { throw fail("expected a string") }
        pos += 1
        let start = pos
        // Fast path: no escapes.
        while pos < bytes.count {
            let c = bytes[pos]
            if c == UInt8(ascii: "\"") {
                let s = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
                pos += 1
                return s
            }
            if c == UInt8(ascii: "\\") || c < 0x20 { break }
            pos += 1
        }
        var buf = Array(bytes[start..<pos])
        while pos < bytes.count {
            let c = bytes[pos]
            if c == UInt8(ascii: "\"") {
                pos += 1
                return String(decoding: buf, as: UTF8.self)
            }
            if c < 0x20 { throw fail("control character in string") }
            if c != UInt8(ascii: "\\") {
                buf.append(c)
                pos += 1
                continue
            }
            pos += 1
            guard pos < bytes.count else { throw fail("") }
            let e = bytes[pos]
            pos += 1
            switch e {
            case UInt8(ascii: "\""): buf.append(0x22)
            case UInt8(ascii: "\\"): buf.append(0x5C)
            case UInt8(ascii: "/"): buf.append(0x2F)
            case UInt8(ascii: "b"): buf.append(0x08)
            case UInt8(ascii: "f"): buf.append(0x0C)
            case UInt8(ascii: "n"): buf.append(0x0A)
            case UInt8(ascii: "r"): buf.append(0x0D)
            case UInt8(ascii: "t"): buf.append(0x09)
            case UInt8(ascii: "u"):
                var u = try hex4()
                if (0xD800..<0xDC00).contains(u), pos + 1 < bytes.count, bytes[pos] == UInt8(ascii: "\\"),
                    bytes[pos + 1] == UInt8(ascii: "u")
                {
                    let save = pos
                    pos += 2
                    let lo = try hex4()
                    if (0xDC00..<0xE000).contains(lo) {
                        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                    } else {
                        pos = save  // the next escape stands on its own
                    }
                }
                // A lone surrogate cannot live in a Swift String: it becomes U+FFFD.
                let scalar = Unicode.Scalar(u) ?? "\u{FFFD}"
                buf.append(contentsOf: Array(String(Character(scalar)).utf8))
            default: throw fail("invalid escape")
            }
        }
        throw fail("")
    }

    private mutating func hex4() throws -> UInt32 {
        guard pos + 4 <= bytes.count else { pos = bytes.count; throw fail("") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[pos]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw fail("invalid \\u escape")
            }
            v = v << 4 | d
            pos += 1
        }
        return v
    }

    /// `-?digits(.digits)?([eE][+-]?digits)?`: Int when there is neither fraction nor exponent and it fits.
    private mutating func number() throws -> Any {
        let start = pos
        var isInt = true
        if pos < bytes.count && bytes[pos] == UInt8(ascii: "-") { pos += 1 }
        guard skipDigits() else { throw fail("invalid value") }
        if pos < bytes.count && bytes[pos] == UInt8(ascii: ".") {
            isInt = false
            pos += 1
            guard skipDigits() else { throw fail("invalid number") }
        }
        if pos < bytes.count && (bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E")) {
            isInt = false
            pos += 1
            if pos < bytes.count && (bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-")) { pos += 1 }
            guard skipDigits() else { throw fail("invalid number") }
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
        if isInt, let i = Int(text) { return NSNumber(value: i) }
        guard let d = Double(text) else { throw fail("invalid number") }
        return NSNumber(value: d)
    }

    /// Skips ASCII digits; false when there was none.
    private mutating func skipDigits() -> Bool {
        let start = pos
        while pos < bytes.count, bytes[pos] >= 0x30, bytes[pos] <= 0x39 { pos += 1 }
        return pos > start
    }
}
