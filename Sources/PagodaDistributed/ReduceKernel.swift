/// Element-wise sum of `sourceCount` float arrays into `dst`, always in source order
/// (((s0 + s1) + s2) + …), so every rank and every transport produces bit-identical results equal to a
/// single-process sum in rank order. One pass: every element of every source is read before that
/// element of `dst` is written, so `dst` may alias any one source.
@inline(__always)
func reduceSumInOrder(
    into dst: UnsafeMutablePointer<Float>, sources: UnsafePointer<UnsafePointer<Float>>, sourceCount: Int, count: Int
) {
    var i = 0
    if sourceCount == 2 {
        let a = UnsafeRawPointer(sources[0]), b = UnsafeRawPointer(sources[1])
        let d = UnsafeMutableRawPointer(dst)
        while i + 16 <= count {
            let x = a.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            let y = b.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            d.storeBytes(of: x + y, toByteOffset: i * 4, as: SIMD16<Float>.self)
            i += 16
        }
    } else {
        let d = UnsafeMutableRawPointer(dst)
        while i + 16 <= count {
            var acc = UnsafeRawPointer(sources[0]).loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            for q in 1..<sourceCount {
                acc += UnsafeRawPointer(sources[q]).loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            }
            d.storeBytes(of: acc, toByteOffset: i * 4, as: SIMD16<Float>.self)
            i += 16
        }
    }
    while i < count {
        var acc = sources[0][i]
        for q in 1..<sourceCount { acc += sources[q][i] }
        dst[i] = acc
        i += 1
    }
}
