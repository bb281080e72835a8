/// GPT-2's reversible byte <-> printable-scalar map (`bytes_to_unicode`): printable Latin-1 bytes map to
/// themselves, the other 68 bytes to U+0100 and up, in byte order. Byte-level BPE vocabularies are written in it.
enum ByteLevelAlphabet {
    /// byte -> scalar
    static let byteToScalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            if printable {
                table[b] = Unicode.Scalar(UInt32(b))!
            } else {
                table[b] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    /// scalar value -> byte, for scalars below 0x144 (the whole alphabet); -1 where not in the alphabet.
    static let scalarToByte: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (b, s) in byteToScalar.enumerated() { table[Int(s.value)] = Int16(b) }
        return table
    }()

    /// Maps text to its byte-level form: every UTF-8 byte becomes one alphabet scalar.
    static func encode(_ scalars: ArraySlice<Unicode.Scalar>, into out: inout [Unicode.Scalar]) {
        for s in scalars {
            let v = s.value
            if v < 0x80 {
                out.append(byteToScalar[Int(v)])
            } else {
                for b in UTF8.encode(s)! { out.append(byteToScalar[Int(b)]) }
            }
        }
    }

    /// The bytes a token stands for, or nil if some scalar is outside the alphabet.
    static func decode(_ token: String, into bytes: inout [UInt8]) -> Bool {
        let start = bytes.count
        for s in token.unicodeScalars {
            let v = Int(s.value)
            guard v < scalarToByte.count, scalarToByte[v] >= 0 else {
                bytes.removeSubrange(start...)
                return false
            }
            bytes.append(UInt8(scalarToByte[v]))
        }
        return true
    }
}
