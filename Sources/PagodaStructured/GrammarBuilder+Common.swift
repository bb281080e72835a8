/// Building blocks shared by the JSON-schema, regex and GBNF compilers: UTF-8 characters and the
/// JSON lexical forms, each defined once per grammar and reused.
extension GrammarBuilder {
    /// Any well-formed multi-byte UTF-8 character (2 to 4 bytes; no overlong forms, surrogates or
    /// code points above U+10FFFF, as RFC 3629), so generated text always decodes.
    public func utf8MultiByte() -> GrammarSymbol {
        if let r = cached["utf8-multi"] { return .rule(r) }
        let cont = GrammarSymbol.bytes(ByteSet(0x80...0xBF))
        func b(_ r: ClosedRange<UInt8>) -> GrammarSymbol { .bytes(ByteSet(r)) }
        let r = declare("utf8-multi")
        define(
            r,
            [
                [b(0xC2...0xDF), cont],
                [b(0xE0...0xE0), b(0xA0...0xBF), cont],
                [.bytes(ByteSet(0xE1...0xEC).union(ByteSet(0xEE...0xEF))), cont, cont],
                [b(0xED...0xED), b(0x80...0x9F), cont],
                [b(0xF0...0xF0), b(0x90...0xBF), cont, cont],
                [b(0xF1...0xF3), cont, cont, cont],
                [b(0xF4...0xF4), b(0x80...0x8F), cont, cont],
            ])
        cached["utf8-multi"] = r
        return .rule(r)
    }

    /// One character of a JSON string's content: an unescaped character or an escape sequence.
    public func jsonStringChar() -> GrammarSymbol {
        if let r = cached["json-char"] { return .rule(r) }
        let plain = ByteSet(bytes: (0x20...0x7F).filter { $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") })
        let hex = GrammarSymbol.bytes(ByteSet(bytes: Array("0123456789abcdefABCDEF".utf8)))
        let r = declare("json-char")
        define(
            r,
            [
                [.bytes(plain)],
                [utf8MultiByte()],
                [.bytes(ByteSet(UInt8(ascii: "\\"))), .bytes(ByteSet(bytes: Array("\"\\/bfnrt".utf8)))],
                [.bytes(ByteSet(UInt8(ascii: "\\"))), .bytes(ByteSet(UInt8(ascii: "u"))), hex, hex, hex, hex],
            ])
        cached["json-char"] = r
        return .rule(r)
    }

    /// A JSON string of `min...max` characters (max nil: unbounded).
    public func jsonString(min: Int = 0, max: Int? = nil) -> GrammarSymbol {
        let key = "json-string-\(min)-\(max.map(String.init) ?? "")"
        if let r = cached[key] { return .rule(r) }
        let quote = GrammarSymbol.bytes(ByteSet(UInt8(ascii: "\"")))
        let r = declare(key)
        define(r, [[quote] + repeated([jsonStringChar()], min: min, max: max, "json-chars") + [quote]])
        cached[key] = r
        return .rule(r)
    }

    /// Digits after the first of an integer part, and of a fraction: bounded so that a model repeating a
    /// digit cannot run to `max_tokens` inside one number (18 digits still hold every int64 value's
    /// magnitude below 10^18).
    static let maxIntegerDigits = 18
    static let maxFractionDigits = 16

    /// A JSON integer: `-?(0|[1-9][0-9]{0,17})`.
    public func jsonInteger() -> GrammarSymbol {
        if let r = cached["json-int"] { return .rule(r) }
        let r = declare("json-int")
        let digits = rule("digits", [repeated([.bytes(ByteSet(0x30...0x39))], min: 0, max: Self.maxIntegerDigits - 1, "digits")])
        define(r, [[optional(literal("-"), "sign"), rule("int-part", [literal("0"), [.bytes(ByteSet(0x31...0x39)), digits]])]])
        cached["json-int"] = r
        return .rule(r)
    }

    /// A JSON number: integer, optional fraction, optional exponent.
    public func jsonNumber() -> GrammarSymbol {
        if let r = cached["json-number"] { return .rule(r) }
        let digit = GrammarSymbol.bytes(ByteSet(0x30...0x39))
        let frac = optional(literal(".") + repeated([digit], min: 1, max: Self.maxFractionDigits, "frac-digits"), "frac")
        let exp = optional(
            [.bytes(ByteSet(bytes: Array("eE".utf8))), optional([.bytes(ByteSet(bytes: Array("+-".utf8)))], "exp-sign")]
                + repeated([digit], min: 1, max: 3, "exp-digits"), "exp")
        let r = declare("json-number")
        define(r, [[jsonInteger(), frac, exp]])
        cached["json-number"] = r
        return .rule(r)
    }

    /// Any JSON value (objects, arrays, strings, numbers, literals), in the compact layout.
    public func jsonAnyValue() -> GrammarSymbol {
        if let r = cached["json-value"] { return .rule(r) }
        let value = declare("json-value")
        cached["json-value"] = value
        let v = GrammarSymbol.rule(value)
        define(
            value,
            [[jsonAnyObject()], [jsonAnyArray()], [jsonString()], [jsonNumber()], literal("true"), literal("false"), literal("null")])
        return v
    }

    /// Any JSON object.
    public func jsonAnyObject() -> GrammarSymbol {
        if let r = cached["json-object"] { return .rule(r) }
        let r = declare("json-object")
        cached["json-object"] = r
        let member = [jsonString()] + literal(": ") + [jsonAnyValue()]
        let more = star(literal(", ") + member, "members")
        define(r, [literal("{") + [optional(member + [more], "object-body")] + literal("}")])
        return .rule(r)
    }

    /// Any JSON array.
    public func jsonAnyArray() -> GrammarSymbol {
        if let r = cached["json-array"] { return .rule(r) }
        let r = declare("json-array")
        cached["json-array"] = r
        let more = star(literal(", ") + [jsonAnyValue()], "elements")
        define(r, [literal("[") + [optional([jsonAnyValue(), more], "array-body")] + literal("]")])
        return .rule(r)
    }
}
