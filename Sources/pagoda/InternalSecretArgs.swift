import ArgumentParser
import Foundation
import PagodaDistributed
import PagodaServer

/// `--internal-secret-file` / `PAGODA_INTERNAL_SECRET`: the deployment's shared secret for its internal
/// connections (engine RPC, the data-parallel handshake of headless nodes, TP rendezvous, KV transfer; see
/// `PeerAuthentication`). Read here, at the command-line edge, and nowhere else. vLLM has no equivalent.
///
/// Without one, a deployment whose processes are all started by one `pagoda serve` gets a random secret; a
/// deployment of independently started processes (headless nodes and their head, KV producers and consumers)
/// must configure the same secret on every side. Children get it through their stdin pipe
/// (`--internal-secret-file /dev/stdin`), never through argv.
struct InternalSecretArgs: ParsableArguments {
    static let variable = "PAGODA_INTERNAL_SECRET"
    static let flag = ChildSecret.flag

    @Option(
        name: .customLong("internal-secret-file"),
        help: ArgumentHelp(
            "File holding the shared secret (at least 16 characters) that authenticates this deployment's internal "
                + "connections: engine RPC, headless data-parallel nodes, TP workers across hosts, KV transfer (env \(variable); "
                + "default: a random secret, for deployments started by one command).", valueName: "path"))
    var internalSecretFile: String?

    /// The configured secret (the file wins over the variable), or nil when none is configured.
    func configured(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> PeerSecret? {
        if let path = internalSecretFile {
            // Read to the end, whatever the file is (a parent hands the secret over on a pipe: read once per process).
            let data =
                path == "/dev/stdin"
                ? FileHandle.standardInput.readDataToEndOfFile() : FileHandle(forReadingAtPath: path)?.readDataToEndOfFile()
            guard let data else {
                throw ValidationError("\(Self.flag): cannot read \(path)")
            }
            do { return try PeerSecret(text: String(decoding: data, as: UTF8.self)) } catch {
                throw ValidationError("\(Self.flag) \(path): \(error)")
            }
        }
        if let text = environment[Self.variable], !text.isEmpty {
            do { return try PeerSecret(text: text) } catch { throw ValidationError("\(Self.variable): \(error)") }
        }
        return nil
    }

    /// The configured secret; without one, a random secret, or a one-line error naming `requiredFor` when
    /// processes started elsewhere must share it.
    func resolve(requiredFor: String?) throws -> PeerSecret {
        if let s = try configured() { return s }
        if let why = requiredFor {
            throw ValidationError(
                "\(why) needs the deployment's shared secret on every side: set \(Self.variable) or pass \(Self.flag)")
        }
        return .random()
    }
}
