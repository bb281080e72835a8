import Foundation

/// The engine RPC's frame format: `[u32 big-endian length L][u8 kind][L-1 bytes payload]`.
///
/// The payload is the message's value as compact JSON (Foundation's `JSONEncoder`), except for
/// the per-step `outputs` message, which has a small binary layout (`EngineOutputsCodec`). Why not
/// swift-protobuf: building `protoc-gen-swift` costs ~10 minutes of the shared 2-core build
/// machine for every fresh checkout, and the messages are few and already `Codable`. The kind
/// byte selects the payload format per kind; `EngineRPCProtocol.version` guards the shapes.
public enum EngineRPCFrame {
    /// Upper bound on one frame; a longer length prefix means a corrupt stream.
    public static let maxFrameBytes = 512 << 20

    enum Kind: UInt8 {
        case hello = 1, helloAck, addRequest, abort, outputs, stats, utility, utilityResult, shutdown, failure, kvEvents, heartbeat
    }

    private struct Empty: Codable {}
    /// The one field of a hello every protocol version has: read when a hello does not decode.
    private struct VersionOnly: Codable { var protocolVersion: Int }

    /// The whole frame (length prefix included) for `message`.
    public static func encode(_ message: EngineRPCMessage) throws -> [UInt8] {
        let encoder = JSONEncoder()
        let kind: Kind
        let payload: Data
        switch message {
        case .hello(let h): kind = .hello; payload = try encoder.encode(h)
        case .helloAck: kind = .helloAck; payload = Data()
        case .addRequest(let r): kind = .addRequest; payload = try encoder.encode(r)
        case .abort(let ids): kind = .abort; payload = try encoder.encode(ids)
        case .outputs(let o):
            // The per-step message: binary (EngineOutputsCodec), not JSON.
            var bytes: [UInt8] = []
            bytes.reserveCapacity(8 + o.count * 64)
            EngineOutputsCodec.encode(o, into: &bytes)
            kind = .outputs; payload = Data(bytes)
        case .stats(let s): kind = .stats; payload = try encoder.encode(s)
        case .utility(let c): kind = .utility; payload = try encoder.encode(c)
        case .utilityResult(let r): kind = .utilityResult; payload = try encoder.encode(r)
        case .shutdown: kind = .shutdown; payload = Data()
        case .failure(let s): kind = .failure; payload = Data(s.utf8)
        case .kvEvents(let e): kind = .kvEvents; payload = try encoder.encode(e)
        case .heartbeat: kind = .heartbeat; payload = Data()
        }
        let length = UInt32(payload.count + 1)
        var frame = [UInt8]()
        frame.reserveCapacity(payload.count + 5)
        frame.append(UInt8(truncatingIfNeeded: length >> 24)); frame.append(UInt8(truncatingIfNeeded: length >> 16))
        frame.append(UInt8(truncatingIfNeeded: length >> 8)); frame.append(UInt8(truncatingIfNeeded: length))
        frame.append(kind.rawValue)
        frame.append(contentsOf: payload)
        return frame
    }

    /// Decodes the body of one frame (kind byte + payload, no length prefix).
    public static func decode<C: Collection>(body: C) throws -> EngineRPCMessage where C.Element == UInt8 {
        guard let first = body.first else { throw EngineRPCError.badFrame("empty frame") }
        guard let kind = Kind(rawValue: first) else { throw EngineRPCError.badFrame("unknown message kind \(first)") }
        if kind == .outputs { return .outputs(try EngineOutputsCodec.decode([UInt8](body.dropFirst()))) }
        let payload = Data(body.dropFirst())
        let d = JSONDecoder()
        do {
            switch kind {
            case .hello:
                do { return .hello(try d.decode(EngineHandshake.self, from: payload)) } catch {
                    // Another version's hello: say so rather than "bad frame".
                    if let v = try? d.decode(VersionOnly.self, from: payload), v.protocolVersion != EngineRPCProtocol.version {
                        throw EngineRPCError.handshake(
                            "engine core speaks protocol v\(v.protocolVersion), this front-end v\(EngineRPCProtocol.version)")
                    }
                    throw error
                }
            case .helloAck: return .helloAck
            case .addRequest: return .addRequest(try d.decode(EngineRequest.self, from: payload))
            case .abort: return .abort(try d.decode([String].self, from: payload))
            case .outputs: return .outputs(try EngineOutputsCodec.decode([UInt8](payload)))
            case .stats: return .stats(try d.decode(SchedulerStats.self, from: payload))
            case .utility: return .utility(try d.decode(EngineUtilityCall.self, from: payload))
            case .utilityResult: return .utilityResult(try d.decode(EngineUtilityResult.self, from: payload))
            case .shutdown: return .shutdown
            case .failure: return .failure(String(decoding: payload, as: UTF8.self))
            case .kvEvents: return .kvEvents(try d.decode(KVCacheEvents.self, from: payload))
            case .heartbeat: return .heartbeat
            }
        } catch let e as EngineRPCError {
            throw e
        } catch {
            throw EngineRPCError.badFrame("\(kind) payload: \(error)")
        }
    }
}
