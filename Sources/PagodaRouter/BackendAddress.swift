/// One backend server the proxy fronts: `host:port`, reached over plain HTTP.
public struct BackendAddress: Hashable, Sendable, CustomStringConvertible {
    public let host: String
    public let port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` (an IPv6 host in brackets: `[::1]:8000`).
    public init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let colon = trimmed.lastIndex(of: ":") else {
            throw RouterConfigError.invalidBackend(text, reason: "expected host:port")
        }
        var host = String(trimmed[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw RouterConfigError.invalidBackend(text, reason: "empty host") }
        guard let port = Int(trimmed[trimmed.index(after: colon)...]), (1...65535).contains(port) else {
            throw RouterConfigError.invalidBackend(text, reason: "port must be an integer in 1...65535")
        }
        self.init(host: host, port: port)
    }

    /// `http://host:port` (IPv6 hosts bracketed).
    public var baseURL: String {
        host.contains(":") ? "http://[\(host)]:\(port)" : "http://\(host):\(port)"
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Builds the list from `--dp-hosts`/`--dp-ports` (vllm-ascend's flags) and `--backends h:p,...`.
    public static func list(dpHosts: [String], dpPorts: [Int], backends: [String]) throws -> [BackendAddress] {
        guard dpHosts.count == dpPorts.count else {
            throw RouterConfigError.mismatchedHostsAndPorts(hosts: dpHosts.count, ports: dpPorts.count)
        }
        var result: [BackendAddress] = []
        for (host, port) in zip(dpHosts, dpPorts) {
            guard (1...65535).contains(port) else {
                throw RouterConfigError.invalidBackend("\(host):\(port)", reason: "port must be in 1...65535")
            }
            result.append(BackendAddress(host: host, port: port))
        }
        for item in backends.flatMap({ $0.split(separator: ",") }) where !item.isEmpty {
            result.append(try BackendAddress(parsing: String(item)))
        }
        guard !result.isEmpty else { throw RouterConfigError.noBackends }
        if let duplicate = Dictionary(grouping: result, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw RouterConfigError.duplicateBackend(duplicate.description)
        }
        return result
    }
}

import Foundation
