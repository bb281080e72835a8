import Foundation

/// A String compared and hashed by its UTF-8 bytes. Swift's `String ==` is canonical equivalence, which would
/// make distinct vocab entries (e.g. U+03AC and U+1F71) one key; token lookups must be byte-exact.
struct ExactString: Hashable {
    let string: String

    init(_ s: String) {
        var t = s
        t.makeContiguousUTF8()
        string = t
    }

    static func == (a: ExactString, b: ExactString) -> Bool {
        let x = a.string.utf8
        let y = b.string.utf8
        guard x.count == y.count else { return false }
        return x.withContiguousStorageIfAvailable { px in
            y.withContiguousStorageIfAvailable { py in
                memcmp(px.baseAddress!, py.baseAddress!, px.count) == 0
            }
        }.flatMap { $0 } ?? x.elementsEqual(y)
    }

    func hash(into h: inout Hasher) {
        if let done: Void = string.utf8.withContiguousStorageIfAvailable({ h.combine(bytes: UnsafeRawBufferPointer($0)) }) {
            return done
        }
        for b in string.utf8 { h.combine(b) }
    }
}
