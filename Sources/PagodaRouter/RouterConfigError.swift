/// A bad `pagoda proxy` / `pagoda launch` setting, named by its flag.
public enum RouterConfigError: Error, CustomStringConvertible, Equatable {
    case invalidBackend(String, reason: String)
    case mismatchedHostsAndPorts(hosts: Int, ports: Int)
    case noBackends
    case duplicateBackend(String)
    case invalidValue(flag: String, value: String, reason: String)

    public var description: String {
        switch self {
        case .invalidBackend(let text, let reason): return "invalid backend '\(text)': \(reason)"
        case .mismatchedHostsAndPorts(let hosts, let ports):
            return "--dp-hosts has \(hosts) entries but --dp-ports has \(ports); give one port per host"
        case .noBackends: return "no backends: give --dp-hosts/--dp-ports or --backends host:port,..."
        case .duplicateBackend(let backend): return "backend \(backend) is listed twice"
        case .invalidValue(let flag, let value, let reason): return "\(flag) \(value): \(reason)"
        }
    }
}
