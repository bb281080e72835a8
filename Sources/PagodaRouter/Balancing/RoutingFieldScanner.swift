/// The proxy's fast path for `RequestSummary`: one strict pass over the JSON bytes that reads only the routing
/// fields and checks the rest is well-formed JSON, with no `Codable` machinery (about a tenth of `JSONDecoder`'s
/// time on a typical request, which is most of the proxy's own work per request).
///
/// It gives up (returns nil) on anything it does not take in full: a shape other than the ones
/// `RequestSummary` accepts, an escaped key, a repeated routing field, non-ASCII text in a field it skips,
/// numbers other than plain integers in an integer field, nesting deeper than 64. `JSONDecoder` then decides,
/// so every error message and every unusual case stays exactly as the decoder path has them; for a body it does
/// take, the result equals the decoder's (asserted in RequestSummaryTests).
struct RoutingFieldScanner {
    private struct GiveUp: Error {}

    /// What the body said about the routing fields (nil: absent or null).
    private enum Prompt {
        case text(String)
        case tokenIds([Int])
    }

    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0
    private var depth = 0

    private init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    /// The summary of a body, or nil when the decoder path must decide.
    static func summary(_ body: [UInt8], isChat: Bool) -> RequestSummary? {
        body.withUnsafeBufferPointer { buffer in
            var scanner = RoutingFieldScanner(buffer)
            return try? scanner.readSummary(isChat: isChat)
        }
    }

    // MARK: The request object

    private mutating func readSummary(isChat: Bool) throws -> RequestSummary {
        var model: String?
        var prompt: Prompt?
        var messages: [(role: String?, content: String)]?
        var maxTokens: Int?
        var maxCompletionTokens: Int?
        var ignoreEOS: Bool?
        var stream: Bool?
        var seen = Set<String>()

        skipWhitespace()
        try readObject { scanner, key in
            switch key {
            case "model", "prompt", "messages", "max_tokens", "max_completion_tokens", "ignore_eos", "stream":
                guard seen.insert(key).inserted else { throw GiveUp() }
            default:
                break
            }
            switch key {
            case "model": model = try scanner.readOptionalString()
            case "prompt": prompt = try scanner.readPrompt()
            case "messages": messages = try scanner.readMessages()
            case "max_tokens": maxTokens = try scanner.readOptionalInt()
            case "max_completion_tokens": maxCompletionTokens = try scanner.readOptionalInt()
            case "ignore_eos": ignoreEOS = try scanner.readOptionalBool()
            case "stream": stream = try scanner.readOptionalBool()
            default: try scanner.skipValue()
            }
        }
        skipWhitespace()
        guard index == bytes.count else { throw GiveUp() }

        var summary = RequestSummary(
            model: model, promptText: "", maxTokens: maxTokens ?? maxCompletionTokens, ignoreEOS: ignoreEOS ?? false,
            stream: stream ?? false)
        if isChat {
            guard let messages else { throw GiveUp() }
            summary.promptText = messages.map { ($0.role ?? "") + ": " + $0.content + "\n" }.joined()
        } else {
            switch prompt {
            case nil: throw GiveUp()
            case .text(let text): summary.promptText = text
            case .tokenIds(let ids):
                summary.promptTokenIds = ids
                summary.promptText = ids.map(String.init).joined(separator: " ")
            }
        }
        return summary
    }

    /// `prompt`: a string, strings (joined by newlines; `[]` is ""), token ids, or batches of token ids.
    private mutating func readPrompt() throws -> Prompt? {
        switch peek() {
        case UInt8(ascii: "n"):
            try readLiteral("null")
            return nil
        case UInt8(ascii: "\""):
            return .text(try readString())
        case UInt8(ascii: "["):
            var texts: [String] = []
            var ids: [Int] = []
            var kind: UInt8 = 0  // what the first element is ("\"", "[" or "0" for a number); all must be alike
            try readArray { scanner in
                var this = scanner.peek()
                if this == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(this) {
                    this = UInt8(ascii: "0")
                }
                if kind == 0 { kind = this } else if this != kind { throw GiveUp() }
                switch this {
                case UInt8(ascii: "\""): texts.append(try scanner.readString())
                case UInt8(ascii: "["): try scanner.readArray { scanner in ids.append(try scanner.readInt()) }
                case UInt8(ascii: "0"): ids.append(try scanner.readInt())
                default: throw GiveUp()
                }
            }
            if kind == 0 || kind == UInt8(ascii: "\"") { return .text(texts.joined(separator: "\n")) }
            return .tokenIds(ids)
        default:
            throw GiveUp()
        }
    }

    /// `messages`: objects with an optional string `role` and `content` (null, a string, or parts whose
    /// optional string `text`s are joined).
    private mutating func readMessages() throws -> [(role: String?, content: String)]? {
        if peek() == UInt8(ascii: "n") {
            try readLiteral("null")
            return nil
        }
        var messages: [(role: String?, content: String)] = []
        try readArray { scanner in
            var role: String?
            var content = ""
            var seen = Set<String>()
            try scanner.readObject { scanner, key in
                switch key {
                case "role":
                    guard seen.insert(key).inserted else { throw GiveUp() }
                    role = try scanner.readOptionalString()
                case "content":
                    guard seen.insert(key).inserted else { throw GiveUp() }
                    content = try scanner.readContent()
                default:
                    try scanner.skipValue()
                }
            }
            messages.append((role, content))
        }
        return messages
    }

    private mutating func readContent() throws -> String {
        switch peek() {
        case UInt8(ascii: "n"):
            try readLiteral("null")
            return ""
        case UInt8(ascii: "\""):
            return try readString()
        case UInt8(ascii: "["):
            var text = ""
            try readArray { scanner in
                var seenText = false
                try scanner.readObject { scanner, key in
                    guard key == "text" else { return try scanner.skipValue() }
                    guard !seenText else { throw GiveUp() }
                    seenText = true
                    if let part = try scanner.readOptionalString() { text += part }
                }
            }
            return text
        default:
            throw GiveUp()
        }
    }

    // MARK: Typed values

    private mutating func readOptionalString() throws -> String? {
        if peek() == UInt8(ascii: "n") {
            try readLiteral("null")
            return nil
        }
        return try readString()
    }

    private mutating func readOptionalBool() throws -> Bool? {
        switch peek() {
        case UInt8(ascii: "t"): try readLiteral("true"); return true
        case UInt8(ascii: "f"): try readLiteral("false"); return false
        case UInt8(ascii: "n"): try readLiteral("null"); return nil
        default: throw GiveUp()
        }
    }

    private mutating func readOptionalInt() throws -> Int? {
        if peek() == UInt8(ascii: "n") {
            try readLiteral("null")
            return nil
        }
        return try readInt()
    }

    /// A plain integer (`-?(0|[1-9][0-9]*)`) that fits in Int; a fraction or exponent gives up.
    private mutating func readInt() throws -> Int {
        var negative = false
        if peek() == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        let start = index
        var value = 0
        while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
            let digit = Int(bytes[index] - UInt8(ascii: "0"))
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(digit)
            guard !o1, !o2 else { throw GiveUp() }
            value = sum
            index += 1
        }
        let count = index - start
        guard count > 0, !(count > 1 && bytes[start] == UInt8(ascii: "0")) else { throw GiveUp() }
        if index < bytes.count, [UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E")].contains(bytes[index]) {
            throw GiveUp()
        }
        return negative ? -value : value
    }

    /// A string value, escapes decoded; its text must be valid UTF-8.
    private mutating func readString() throws -> String {
        guard peek() == UInt8(ascii: "\"") else { throw GiveUp() }
        index += 1
        let start = index
        // Fast case: no escape up to the closing quote.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let text = try validated(UnsafeBufferPointer(rebasing: bytes[start..<index]))
                index += 1
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            guard byte >= 0x20 else { throw GiveUp() }
            index += 1
        }
        var decoded = Array(bytes[start..<index])
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                return try decoded.withUnsafeBufferPointer { try validated($0) }
            case UInt8(ascii: "\\"):
                guard index < bytes.count else { throw GiveUp() }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): decoded.append(escape)
                case UInt8(ascii: "b"): decoded.append(0x08)
                case UInt8(ascii: "f"): decoded.append(0x0C)
                case UInt8(ascii: "n"): decoded.append(0x0A)
                case UInt8(ascii: "r"): decoded.append(0x0D)
                case UInt8(ascii: "t"): decoded.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try readHex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
                        else { throw GiveUp() }
                        index += 2
                        let low = try readHex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw GiveUp() }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw GiveUp()
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw GiveUp() }
                    decoded.append(contentsOf: UTF8.encode(unicode)!)
                default:
                    throw GiveUp()
                }
            default:
                guard byte >= 0x20 else { throw GiveUp() }
                decoded.append(byte)
            }
        }
        throw GiveUp()
    }

    private mutating func readHex4() throws -> UInt32 {
        guard index + 4 <= bytes.count else { throw GiveUp() }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw GiveUp()
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    private func validated(_ utf8: UnsafeBufferPointer<UInt8>) throws -> String {
        if !utf8.contains(where: { $0 >= 0x80 }) { return String(decoding: utf8, as: UTF8.self) }
        guard let text = String(validating: utf8, as: UTF8.self) else { throw GiveUp() }
        return text
    }

    // MARK: Structure

    /// `{ "key": value, ... }`; `body` reads each value (the key is unescaped: an escaped key gives up).
    private mutating func readObject(_ body: (inout RoutingFieldScanner, String) throws -> Void) throws {
        guard peek() == UInt8(ascii: "{") else { throw GiveUp() }
        try enter()
        index += 1
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            index += 1
            depth -= 1
            return
        }
        while true {
            skipWhitespace()
            let key = try readKey()
            skipWhitespace()
            guard peek() == UInt8(ascii: ":") else { throw GiveUp() }
            index += 1
            skipWhitespace()
            try body(&self, key)
            skipWhitespace()
            switch peek() {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"):
                index += 1
                depth -= 1
                return
            default: throw GiveUp()
            }
        }
    }

    /// `[ value, ... ]`; `element` reads each value (whitespace before it already skipped).
    private mutating func readArray(_ element: (inout RoutingFieldScanner) throws -> Void) throws {
        guard peek() == UInt8(ascii: "[") else { throw GiveUp() }
        try enter()
        index += 1
        skipWhitespace()
        if peek() == UInt8(ascii: "]") {
            index += 1
            depth -= 1
            return
        }
        while true {
            skipWhitespace()
            try element(&self)
            skipWhitespace()
            switch peek() {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "]"):
                index += 1
                depth -= 1
                return
            default: throw GiveUp()
            }
        }
    }

    private mutating func readKey() throws -> String {
        guard peek() == UInt8(ascii: "\"") else { throw GiveUp() }
        let start = index + 1
        var end = start
        while end < bytes.count, bytes[end] != UInt8(ascii: "\"") {
            guard bytes[end] != UInt8(ascii: "\\"), bytes[end] >= 0x20, bytes[end] < 0x80 else { throw GiveUp() }
            end += 1
        }
        guard end < bytes.count else { throw GiveUp() }
        index = end + 1
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
    }

    /// Any JSON value, checked and passed over. Text in it must be ASCII (else the decoder path decides).
    private mutating func skipValue() throws {
        switch peek() {
        case UInt8(ascii: "{"): try readObject { scanner, _ in try scanner.skipValue() }
        case UInt8(ascii: "["): try readArray { scanner in try scanner.skipValue() }
        case UInt8(ascii: "\""):
            let text = try readString()
            guard text.utf8.allSatisfy({ $0 < 0x80 }) else { throw GiveUp() }
        case UInt8(ascii: "t"): try readLiteral("true")
        case UInt8(ascii: "f"): try readLiteral("false")
        case UInt8(ascii: "n"): try readLiteral("null")
        default: try skipNumber()
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    private mutating func skipNumber() throws {
        if peek() == UInt8(ascii: "-") { index += 1 }
        let intStart = index
        let intDigits = digits()
        guard intDigits > 0, !(intDigits > 1 && bytes[intStart] == UInt8(ascii: "0")) else { throw GiveUp() }
        if peek() == UInt8(ascii: ".") {
            index += 1
            guard digits() > 0 else { throw GiveUp() }
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            index += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { index += 1 }
            guard digits() > 0 else { throw GiveUp() }
        }
    }

    private mutating func digits() -> Int {
        let start = index
        while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") { index += 1 }
        return index - start
    }

    private mutating func readLiteral(_ literal: StaticString) throws {
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw GiveUp() }
        let expected = UnsafeBufferPointer(start: literal.utf8Start, count: count)
        for offset in 0..<count where bytes[index + offset] != expected[offset] { throw GiveUp() }
        index += count
    }

    private mutating func enter() throws {
        depth += 1
        guard depth <= 64 else { throw GiveUp() }
    }

    private func peek() -> UInt8 { index < bytes.count ? bytes[index] : 0 }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }
}
