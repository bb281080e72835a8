import Foundation
import PagodaEngine
import PagodaOpenAI

/// `kv_transfer_params` in requests and responses (vLLM's prefill/decode disaggregation): read from the
/// body for the engine's KV connector, and written back from a prefill server's last output.
extension OpenAIServing {
    /// The request's `kv_transfer_params`, if any; a 400 naming the field when malformed or combined with
    /// more than one choice (the params describe one sequence's blocks).
    func kvTransferParams(_ fields: [String: JSONValue], request: ServingRequest) throws -> KVTransferParams? {
        guard let value = fields["kv_transfer_params"], value != .null else { return nil }
        let params: KVTransferParams
        do { params = try JSONDecoder().decode(KVTransferParams.self, from: try JSONEncoder().encode(value)) } catch {
            throw OpenAIError.badRequest("kv_transfer_params is malformed: \(error)", param: "kv_transfer_params")
        }
        if request.prompts.count * request.n != 1 {
            throw OpenAIError.badRequest("kv_transfer_params needs one prompt and n = 1", param: "kv_transfer_params")
        }
        if params.doRemotePrefill == true && params.remoteSource == nil {
            throw OpenAIError.badRequest(
                "kv_transfer_params with do_remote_prefill needs remote_host, remote_port, remote_request_id and remote_block_ids",
                param: "kv_transfer_params")
        }
        return params
    }

    /// The first choice's `kv_transfer_params` as JSON for the response (nil when the engine kept no blocks).
    func kvTransferParamsJSON(_ choices: [ChoiceOutputProcessor]) -> JSONValue? {
        guard let p = choices.first(where: { $0.kvTransferParams != nil })?.kvTransferParams,
            let data = try? JSONEncoder().encode(p)
        else { return nil }
        return try? JSONDecoder().decode(JSONValue.self, from: data)
    }
}
