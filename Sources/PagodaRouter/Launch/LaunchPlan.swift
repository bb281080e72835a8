/// Which servers `pagoda launch` starts: one `pagoda serve` per local data-parallel rank (pure; no I/O).
///
/// After vllm-ascend's `launch_online_dp.py`: local rank i is global rank `dpRankStart + i`, listens on
/// `startPort + i`, and is told `--data-parallel-size N --data-parallel-rank r` (external load balancing:
/// each rank a full server, `pagoda proxy` in front).
public struct LaunchPlan: Equatable, Sendable {
    public struct Rank: Equatable, Sendable {
        public let rank: Int
        public let port: Int
        /// Arguments after the serve command (`pagoda serve`).
        public let arguments: [String]
    }

    public var model: String?
    public var dpSize: Int
    public var tpSize: Int?
    public var dpSizeLocal: Int?
    public var dpRankStart: Int = 0
    public var dpAddress: String?
    public var dpRPCPort: Int?
    public var startPort: Int = 9000
    /// Address every rank listens on.
    public var host: String = "0.0.0.0"
    /// Flags after `--`, passed to every rank unchanged.
    public var extraServeArguments: [String] = []

    public init(model: String?, dpSize: Int) {
        self.model = model
        self.dpSize = dpSize
    }

    public var localSize: Int { dpSizeLocal ?? (dpSize - dpRankStart) }

    /// Throws naming the first bad flag.
    public func validate() throws {
        func bad(_ flag: String, _ value: Int, _ reason: String) -> RouterConfigError {
            .invalidValue(flag: flag, value: "\(value)", reason: reason)
        }
        guard dpSize >= 1 else { throw bad("--dp-size", dpSize, "must be >= 1") }
        if let tpSize, tpSize < 1 { throw bad("--tp-size", tpSize, "must be >= 1") }
        guard dpRankStart >= 0, dpRankStart < dpSize else {
            throw bad("--dp-rank-start", dpRankStart, "must be in 0..<\(dpSize) (--dp-size)")
        }
        guard localSize >= 1 else { throw bad("--dp-size-local", localSize, "must be >= 1") }
        guard dpRankStart + localSize <= dpSize else {
            throw bad("--dp-size-local", localSize,
                      "ranks \(dpRankStart)..<\(dpRankStart + localSize) exceed --dp-size \(dpSize)")
        }
        guard startPort >= 1, startPort + localSize - 1 <= 65535 else {
            throw bad("--start-port", startPort, "ports \(startPort)...\(startPort + localSize - 1) must lie in 1...65535")
        }
        if let dpRPCPort, !(1...65535).contains(dpRPCPort) { throw bad("--dp-rpc-port", dpRPCPort, "must be in 1...65535") }
        if let conflict = extraServeArguments.first(where: Self.managedFlags.contains) {
            throw RouterConfigError.invalidValue(
                flag: conflict, value: "(after --)", reason: "is set by pagoda launch for each rank; use its own flag")
        }
    }

    /// Flags the launcher sets per rank, which extra serve flags may not repeat.
    static let managedFlags: Set<String> = [
        "--port", "--host", "--data-parallel-size", "--data-parallel-rank", "--tensor-parallel-size", "-tp", "-dp",
    ]

    public var ranks: [Rank] {
        (0..<localSize).map { i in
            let rank = dpRankStart + i
            let port = startPort + i
            var arguments: [String] = []
            if let model { arguments.append(model) }
            arguments += ["--host", host, "--port", String(port),
                          "--data-parallel-size", String(dpSize), "--data-parallel-rank", String(rank)]
            if let tpSize { arguments += ["--tensor-parallel-size", String(tpSize)] }
            if let dpAddress { arguments += ["--data-parallel-address", dpAddress] }
            if let dpRPCPort { arguments += ["--data-parallel-rpc-port", String(dpRPCPort)] }
            arguments += extraServeArguments
            return Rank(rank: rank, port: port, arguments: arguments)
        }
    }

    /// Host clients should use to reach the ranks: the DP address, or loopback for a wildcard listen address.
    public var reachableHost: String {
        if let dpAddress { return dpAddress }
        return host == "0.0.0.0" || host == "::" ? "127.0.0.1" : host
    }

    /// The `pagoda proxy` command line that fronts these ranks.
    public func proxyCommand(proxyPort: Int = 8000) -> String {
        let hosts = ranks.map { _ in reachableHost }.joined(separator: " ")
        let ports = ranks.map { String($0.port) }.joined(separator: " ")
        return "pagoda proxy --host 0.0.0.0 --port \(proxyPort) --dp-hosts \(hosts) --dp-ports \(ports)"
    }
}
