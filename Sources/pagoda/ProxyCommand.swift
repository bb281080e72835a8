import ArgumentParser
import Foundation
import Logging
import PagodaRouter
import PagodaTokenizer

/// `pagoda proxy`: Request-length-aware load-balancing proxy over data-parallel servers.
///
/// Flags follow vllm-ascend's `dp_load_balance_proxy_server.py` (`--host --port --dp-hosts --dp-ports`),
/// plus `--backends h:p,...`, the balancing policy and health-check settings.
struct ProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy", abstract: "Request-length-aware load-balancing proxy over data-parallel servers.")

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port, printed at start).") var port = 8000
    @Option(name: .customLong("dp-hosts"), parsing: .upToNextOption, help: "Backend hosts, one per backend.")
    var dpHosts: [String] = []
    @Option(name: .customLong("dp-ports"), parsing: .upToNextOption, help: "Backend ports, one per --dp-hosts entry.")
    var dpPorts: [Int] = []
    @Option(parsing: .upToNextOption, help: "Backends as host:port, comma-separated (adds to --dp-hosts/--dp-ports).")
    var backends: [String] = []
    @Option(help: "Balancing policy: \(BalancingPolicy.allCases.map(\.rawValue).joined(separator: " | ")).")
    var policy = "least-cost"
    @Option(help: "Tokenizer folder (tokenizer.json) to count prompt tokens exactly; default: estimate from bytes.")
    var tokenizer: String?
    @Option(help: "Weight of max_tokens in a request's cost when ignore_eos is not set.") var outputWeight = 0.5
    @Option(help: "cache-aware: fraction of the prompt's prefix blocks that must match.") var cacheThreshold = 0.5
    @Option(help: "cache-aware: in-flight cost above the least loaded backend that overrides affinity (with the relative bound).")
    var balanceAbsThreshold = 2048.0
    @Option(help: "cache-aware: in-flight cost ratio to the least loaded backend that overrides affinity (with the absolute bound).")
    var balanceRelThreshold = 1.5
    @Option(help: "cache-aware: prefix block size in UTF-8 bytes.") var prefixBlockSize = 64
    @Option(help: "Seconds between health probes (GET /health).") var healthCheckInterval = 1.0
    @Option(help: "Seconds a health probe may take.") var healthCheckTimeout = 2.0
    @Option(help: "Failed probes in a row before a backend gets no new requests.") var unhealthyAfter = 2
    @Option(help: "Retries on other backends for a request that failed before any byte reached the client (default: all backends).")
    var maxRetries: Int?
    @Option(help: "Seconds a request to a backend may take in total.") var requestTimeout = 3600.0

    func run() async throws {
        setvbuf(stdout, nil, _IOLBF, 0)
        let configuration: ProxyConfiguration
        do {
            configuration = try makeConfiguration()
            try configuration.validate()
        } catch let error as RouterConfigError {
            throw ValidationError(error.description)
        }
        var logger = Logger(label: "pagoda.proxy")
        logger.logLevel = .notice
        try await ProxyServer(configuration: configuration, logger: logger).run()
    }

    private func makeConfiguration() throws -> ProxyConfiguration {
        var configuration = ProxyConfiguration(
            backends: try BackendAddress.list(dpHosts: dpHosts, dpPorts: dpPorts, backends: backends))
        guard let policy = BalancingPolicy(rawValue: policy) else {
            throw RouterConfigError.invalidValue(
                flag: "--policy", value: policy,
                reason: "expected one of " + BalancingPolicy.allCases.map(\.rawValue).joined(separator: ", "))
        }
        configuration.host = host
        configuration.port = port
        configuration.policy = policy
        configuration.affinity = CacheAffinityBounds(
            cacheThreshold: cacheThreshold, balanceAbsThreshold: balanceAbsThreshold,
            balanceRelThreshold: balanceRelThreshold)
        configuration.prefixBlockSize = prefixBlockSize
        configuration.cost = RequestCost(outputWeight: outputWeight, countTokens: try tokenCounter())
        configuration.healthCheckInterval = healthCheckInterval
        configuration.healthCheckTimeout = healthCheckTimeout
        configuration.unhealthyAfterFailedProbes = unhealthyAfter
        if let maxRetries { configuration.maxAttempts = maxRetries + 1 }
        configuration.requestTimeout = requestTimeout
        if !(outputWeight >= 0) {
            throw RouterConfigError.invalidValue(flag: "--output-weight", value: "\(outputWeight)", reason: "must be >= 0")
        }
        if unhealthyAfter < 1 {
            throw RouterConfigError.invalidValue(flag: "--unhealthy-after", value: "\(unhealthyAfter)", reason: "must be >= 1")
        }
        if prefixBlockSize < 1 {
            throw RouterConfigError.invalidValue(flag: "--prefix-block-size", value: "\(prefixBlockSize)", reason: "must be >= 1")
        }
        return configuration
    }

    /// Exact prompt-token counting from `--tokenizer` (PagodaTokenizer; the chat text is counted without its template).
    private func tokenCounter() throws -> (@Sendable (String) -> Int)? {
        guard let tokenizer else { return nil }
        let loaded: Tokenizer
        do {
            loaded = try Tokenizer(directory: tokenizer)
        } catch {
            throw RouterConfigError.invalidValue(flag: "--tokenizer", value: tokenizer, reason: "\(error)")
        }
        return { loaded.encode($0, addSpecialTokens: false).count }
    }
}
