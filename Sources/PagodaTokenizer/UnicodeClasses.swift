/// Character classes as the reference (`tokenizers`, Oniguruma and Rust's `char`) define them, with an ASCII fast path.
enum UnicodeClasses {
    /// Bits per ASCII code: 1 letter, 2 number, 4 whitespace, 8 punctuation (Rust `is_ascii_punctuation`).
    static let ascii: [UInt8] = {
        var t = [UInt8](repeating: 0, count: 128)
        for c in 0..<128 {
            let s = Unicode.Scalar(UInt8(c))
            if (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) { t[c] |= 1 }
            if c >= 0x30 && c <= 0x39 { t[c] |= 2 }
            if (c >= 0x09 && c <= 0x0D) || c == 0x20 { t[c] |= 4 }
            if (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E) {
                t[c] |= 8
            }
            _ = s
        }
        return t
    }()

    /// `\p{L}`: general category L*.
    @inline(__always) static func isLetter(_ s: Unicode.Scalar) -> Bool {
        if s.value < 128 { return ascii[Int(s.value)] & 1 != 0 }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    /// `\p{N}`: general category N*.
    @inline(__always) static func isNumber(_ s: Unicode.Scalar) -> Bool {
        if s.value < 128 { return ascii[Int(s.value)] & 2 != 0 }
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// `\s` in Oniguruma's Unicode mode and Rust's `char::is_whitespace`: the White_Space property.
    @inline(__always) static func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        if s.value < 128 { return ascii[Int(s.value)] & 4 != 0 }
        return s.properties.isWhitespace
    }

    /// Rust's `is_ascii_punctuation() || is_punctuation()` (general category P*), as the Punctuation pre-tokenizer uses.
    static func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        if s.value < 128 { return ascii[Int(s.value)] & 8 != 0 }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
            .finalPunctuation, .otherPunctuation:
            return true
        default: return false
        }
    }

    /// `\w` as Oniguruma has it in Unicode mode: letters, marks, decimal numbers, connector punctuation.
    static func isWordChar(_ s: Unicode.Scalar) -> Bool {
        if s.value < 128 { return ascii[Int(s.value)] & 3 != 0 || s == "_" }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
            .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation:
            return true
        default: return false
        }
    }

    /// Rust's `char::is_alphanumeric() || c == '_'`, which the added-token `single_word` check uses.
    static func isAlphanumericOrUnderscore(_ s: Unicode.Scalar) -> Bool {
        if s.value < 128 { return ascii[Int(s.value)] & 3 != 0 || s == "_" }
        return s.properties.isAlphabetic || isNumber(s)
    }
}
