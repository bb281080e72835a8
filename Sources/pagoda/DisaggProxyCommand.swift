import ArgumentParser
import Foundation
import Logging
import PagodaRouter
import PagodaTokenizer

/// `pagoda disagg-proxy`: the proxy of prefill/decode disaggregation. Each request goes to a prefill server
/// (`max_tokens: 1`, `kv_transfer_params: {"do_remote_decode": true}`), then to a decode server with the
/// returned `kv_transfer_params`, whose answer is streamed back. Flags after vLLM's disaggregated proxy demo
/// (`--model`, `--prefill`, `--decode`, `--port`) plus the balancing and health flags of `pagoda proxy`.
struct DisaggProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "disagg-proxy", abstract: "Proxy for prefill/decode disaggregation: prefill servers, then decode servers.")

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port, printed at start).") var port = 8000
    @Option(parsing: .upToNextOption, help: "Prefill servers as host:port (several, or comma-separated).")
    var prefill: [String] = []
    @Option(parsing: .upToNextOption, help: "Decode servers as host:port (several, or comma-separated).")
    var decode: [String] = []
    @Option(help: "The model folder (vLLM's demo flag); its tokenizer.json, when present, counts prompt tokens for balancing.")
    var model: String?
    @Option(help: "Balancing policy of both groups: \(BalancingPolicy.allCases.map(\.rawValue).joined(separator: " | ")).")
    var policy = "least-cost"
    @Option(help: "Seconds between health probes (GET /health).") var healthCheckInterval = 1.0
    @Option(help: "Seconds a health probe may take.") var healthCheckTimeout = 2.0
    @Option(help: "Failed probes in a row before a server gets no new requests.") var unhealthyAfter = 2
    @Option(help: "Seconds one leg of a request may take in total.") var requestTimeout = 3600.0

    func run() async throws {
        setvbuf(stdout, nil, _IOLBF, 0)
        let (p, d): (ProxyConfiguration, ProxyConfiguration)
        do {
            (p, d) = try makeConfigurations()
            try p.validate()
            try d.validate()
        } catch let error as RouterConfigError {
            throw ValidationError(error.description)
        }
        var logger = Logger(label: "pagoda.disagg-proxy")
        logger.logLevel = .notice
        try await DisaggProxyServer(prefill: p, decode: d, logger: logger).run()
    }

    private func makeConfigurations() throws -> (ProxyConfiguration, ProxyConfiguration) {
        guard !prefill.isEmpty else { throw ValidationError("missing --prefill: at least one prefill server host:port") }
        guard !decode.isEmpty else { throw ValidationError("missing --decode: at least one decode server host:port") }
        guard let policy = BalancingPolicy(rawValue: policy) else {
            throw RouterConfigError.invalidValue(
                flag: "--policy", value: policy,
                reason: "expected one of " + BalancingPolicy.allCases.map(\.rawValue).joined(separator: ", "))
        }
        if unhealthyAfter < 1 {
            throw RouterConfigError.invalidValue(flag: "--unhealthy-after", value: "\(unhealthyAfter)", reason: "must be >= 1")
        }
        let counter = try tokenCounter()
        func make(_ list: [String]) throws -> ProxyConfiguration {
            var c = ProxyConfiguration(backends: try BackendAddress.list(dpHosts: [], dpPorts: [], backends: list))
            c.host = host
            c.port = port
            c.policy = policy
            c.cost = RequestCost(outputWeight: 0.5, countTokens: counter)
            c.healthCheckInterval = healthCheckInterval
            c.healthCheckTimeout = healthCheckTimeout
            c.unhealthyAfterFailedProbes = unhealthyAfter
            c.requestTimeout = requestTimeout
            return c
        }
        return (try make(prefill), try make(decode))
    }

    private func tokenCounter() throws -> (@Sendable (String) -> Int)? {
        guard let model, FileManager.default.fileExists(atPath: (model as NSString).appendingPathComponent("tokenizer.json")) else {
            return nil
        }
        do {
            let loaded = try Tokenizer(directory: model)
            return { loaded.encode($0, addSpecialTokens: false).count }
        } catch {
            throw RouterConfigError.invalidValue(flag: "--model", value: model, reason: "\(error)")
        }
    }
}
