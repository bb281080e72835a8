import Foundation

/// The request bodies of the two legs of a disaggregated request (vLLM's disaggregated-serving proxy):
/// the prefill leg asks for one token, unstreamed, with `kv_transfer_params: {"do_remote_decode": true}`;
/// the decode leg is the client's request with the `kv_transfer_params` the prefill answer returned.
enum DisaggRequestBodies {
    struct Invalid: Error { let message: String; let param: String? }

    /// The client's body as a JSON object.
    static func object(_ body: [UInt8]) throws -> [String: Any] {
        guard let any = try? JSONSerialization.jsonObject(with: Data(body)), let obj = any as? [String: Any] else {
            throw Invalid(message: "the request body is not a JSON object", param: nil)
        }
        if let n = obj["n"] as? Int, n != 1 {
            throw Invalid(message: "n must be 1 behind the disaggregated proxy (the KV of one sequence is transferred)", param: "n")
        }
        return obj
    }

    static func prefill(_ client: [String: Any]) throws -> [UInt8] {
        var obj = client
        obj["max_tokens"] = 1
        if obj["max_completion_tokens"] != nil { obj["max_completion_tokens"] = 1 }
        obj["min_tokens"] = nil
        obj["stream"] = false
        obj["stream_options"] = nil
        obj["kv_transfer_params"] = ["do_remote_decode": true]
        return try encode(obj)
    }

    /// The decode body: the client's request with `params` (nil: none came back, the decode server computes
    /// the prompt itself).
    static func decode(_ client: [String: Any], params: Any?) throws -> [UInt8] {
        var obj = client
        obj["kv_transfer_params"] = params
        return try encode(obj)
    }

    /// The `kv_transfer_params` of a prefill answer, if it has any.
    static func transferParams(fromAnswer body: [UInt8]) -> Any? {
        guard let any = try? JSONSerialization.jsonObject(with: Data(body)), let obj = any as? [String: Any],
            let p = obj["kv_transfer_params"], !(p is NSNull)
        else { return nil }
        return p
    }

    private static func encode(_ obj: [String: Any]) throws -> [UInt8] {
        [UInt8](try JSONSerialization.data(withJSONObject: obj))
    }
}
