import Foundation

/// Binary payload of the `outputs` message, the one message sent every engine step (JSON cost
/// ~1 ms per step for 64 requests in a debug build; this is a plain byte copy).
///
/// Layout, little-endian: `u32 count`, then per output: `u16 idLength, id (UTF-8)`,
/// `u32 tokenCount, i32 × tokenCount`, `u8 flags` (1 logprobs, 2 finishReason, 4 stopReason,
/// 8 numCachedTokens, 16 error, 32 promptLogprobs, 64 kvTransferParams, 128 engineFailed: no payload), then the present fields in that order:
/// logprobs as `u32 n, n × (i32 token, f32 logprob, u16 topCount, topCount × (i32, f32))`, finishReason as `u8`
/// (index in `FinishReason.allCodes`), stopReason and numCachedTokens as `i64`, error as
/// `u32 length, UTF-8`, prompt logprobs as logprobs with an `i32 rank` after each logprob, kvTransferParams as
/// `u32 length, JSON` (once per request, on its last output).
enum EngineOutputsCodec {
    static let finishCodes: [FinishReason] = [.stop, .length, .abort, .error]

    static func encode(_ outputs: [EngineOutput], into out: inout [UInt8]) {
        func u8(_ v: UInt8) { out.append(v) }
        func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func i32(_ v: Int) { u32(UInt32(bitPattern: Int32(truncatingIfNeeded: v))) }
        func i64(_ v: Int) { withUnsafeBytes(of: Int64(v).littleEndian) { out.append(contentsOf: $0) } }
        func f32(_ v: Float) { u32(v.bitPattern) }
        u32(UInt32(outputs.count))
        for o in outputs {
            let id = Array(o.requestId.utf8)
            u16(UInt16(truncatingIfNeeded: id.count)); out.append(contentsOf: id.prefix(Int(UInt16.max)))
            u32(UInt32(o.newTokenIds.count)); for t in o.newTokenIds { i32(t) }
            var flags: UInt8 = 0
            if o.newLogprobs != nil { flags |= 1 }
            if o.finishReason != nil { flags |= 2 }
            if o.stopReason != nil { flags |= 4 }
            if o.numCachedTokens != nil { flags |= 8 }
            if o.error != nil { flags |= 16 }
            if o.promptLogprobs != nil { flags |= 32 }
            let kvParams = o.kvTransferParams.flatMap { try? JSONEncoder().encode($0) }
            if kvParams != nil { flags |= 64 }
            if o.engineFailed == true { flags |= 128 }
            u8(flags)
            func logprobs(_ lps: [TokenLogprob], rank: Bool) {
                u32(UInt32(lps.count))
                for lp in lps {
                    i32(lp.tokenId); f32(lp.logprob)
                    if rank { i32(lp.rank ?? 0) }
                    u16(UInt16(truncatingIfNeeded: lp.top.count))
                    for t in lp.top { i32(t.tokenId); f32(t.logprob) }
                }
            }
            if let lps = o.newLogprobs { logprobs(lps, rank: false) }
            if let f = o.finishReason { u8(UInt8(finishCodes.firstIndex(of: f) ?? 3)) }
            if let s = o.stopReason { i64(s) }
            if let c = o.numCachedTokens { i64(c) }
            if let e = o.error { let b = Array(e.utf8); u32(UInt32(b.count)); out.append(contentsOf: b) }
            if let lps = o.promptLogprobs { logprobs(lps, rank: true) }
            if let k = kvParams { u32(UInt32(k.count)); out.append(contentsOf: k) }
        }
    }

    static func decode<C: Collection>(_ bytes: C) throws -> [EngineOutput] where C.Element == UInt8, C.Index == Int {
        var p = bytes.startIndex
        let end = bytes.endIndex
        func need(_ n: Int) throws { if p + n > end { throw EngineRPCError.badFrame("outputs payload truncated") } }
        func u8() throws -> UInt8 { try need(1); defer { p += 1 }; return bytes[p] }
        func uint(_ n: Int) throws -> UInt64 {
            try need(n)
            var v: UInt64 = 0
            for k in 0..<n { v |= UInt64(bytes[p + k]) << (8 * UInt64(k)) }
            p += n
            return v
        }
        func i32() throws -> Int { Int(Int32(bitPattern: UInt32(try uint(4)))) }
        func f32() throws -> Float { Float(bitPattern: UInt32(try uint(4))) }
        func i64() throws -> Int { Int(Int64(bitPattern: try uint(8))) }
        func string(_ n: Int) throws -> String {
            try need(n); defer { p += n }
            return String(decoding: bytes[p..<(p + n)], as: UTF8.self)
        }
        let count = Int(try uint(4))
        var outputs: [EngineOutput] = []
        outputs.reserveCapacity(min(count, 1 << 16))
        for _ in 0..<count {
            let id = try string(Int(try uint(2)))
            let n = Int(try uint(4))
            try need(4 * n)
            var tokens: [Int] = []
            tokens.reserveCapacity(n)
            for _ in 0..<n { tokens.append(try i32()) }
            let flags = try u8()
            var o = EngineOutput(requestId: id, newTokenIds: tokens)
            func logprobs(rank: Bool) throws -> [TokenLogprob] {
                let m = Int(try uint(4))
                var lps: [TokenLogprob] = []
                for _ in 0..<m {
                    let t = try i32(), l = try f32()
                    let r = rank ? try i32() : nil
                    let k = Int(try uint(2))
                    var top: [TopLogprob] = []
                    for _ in 0..<k { top.append(TopLogprob(tokenId: try i32(), logprob: try f32())) }
                    lps.append(TokenLogprob(tokenId: t, logprob: l, top: top, rank: r))
                }
                return lps
            }
            if flags & 1 != 0 { o.newLogprobs = try logprobs(rank: false) }
            if flags & 2 != 0 {
                let code = Int(try u8())
                guard code < finishCodes.count else { throw EngineRPCError.badFrame("finish reason code \(code)") }
                o.finishReason = finishCodes[code]
            }
            if flags & 4 != 0 { o.stopReason = try i64() }
            if flags & 8 != 0 { o.numCachedTokens = try i64() }
            if flags & 16 != 0 { o.error = try string(Int(try uint(4))) }
            if flags & 128 != 0 { o.engineFailed = true }
            if flags & 32 != 0 { o.promptLogprobs = try logprobs(rank: true) }
            if flags & 64 != 0 {
                let n = Int(try uint(4))
                try need(n)
                do { o.kvTransferParams = try JSONDecoder().decode(KVTransferParams.self, from: Data(bytes[p..<(p + n)])) } catch {
                    throw EngineRPCError.badFrame("kv_transfer_params: \(error)")
                }
                p += n
            }
            outputs.append(o)
        }
        guard p == end else { throw EngineRPCError.badFrame("\(end - p) trailing bytes after outputs") }
        return outputs
    }
}
