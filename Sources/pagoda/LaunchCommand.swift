import ArgumentParser
import Foundation
import PagodaRouter

/// `pagoda launch`: Start every data-parallel rank of a node as its own server.
///
/// Flags follow vllm-ascend's `launch_online_dp.py`; each rank is `pagoda serve MODEL --host H --port
/// START+i --data-parallel-size N --data-parallel-rank S+i [--tensor-parallel-size T] [flags after --]`.
struct LaunchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "launch", abstract: "Start every data-parallel rank of a node as its own server.")

    @Argument(help: "Model folder passed to every `pagoda serve`.") var model: String?
    @Option(help: "Data-parallel size (all nodes).") var dpSize: Int
    @Option(help: "Tensor-parallel size of each rank.") var tpSize: Int?
    @Option(help: "Ranks on this node (default: dp-size - dp-rank-start).") var dpSizeLocal: Int?
    @Option(help: "Global rank of this node's first rank.") var dpRankStart = 0
    @Option(help: "Address of data-parallel rank 0's node (passed as --data-parallel-address).") var dpAddress: String?
    @Option(help: "RPC port on rank 0's node (passed as --data-parallel-rpc-port).") var dpRpcPort: Int?
    @Option(help: "Port of the first local rank; rank i listens on start-port + i.") var startPort = 9000
    @Option(help: "Address the ranks listen on.") var host = "0.0.0.0"
    @Option(help: "Seconds to wait for every rank to answer /health.") var startupTimeout = 600.0
    @Option(help: "Seconds a rank gets to stop after SIGTERM before it is killed.") var shutdownTimeout = 15.0
    @Option(help: .hidden) var serveCommand: String?
    @Argument(parsing: .postTerminator, help: "Extra `pagoda serve` flags, after --.") var serveArguments: [String] = []

    func run() throws {
        setvbuf(stdout, nil, _IOLBF, 0)
        var plan = LaunchPlan(model: model, dpSize: dpSize)
        plan.tpSize = tpSize
        plan.dpSizeLocal = dpSizeLocal
        plan.dpRankStart = dpRankStart
        plan.dpAddress = dpAddress
        plan.dpRPCPort = dpRpcPort
        plan.startPort = startPort
        plan.host = host
        plan.extraServeArguments = serveArguments
        do {
            try plan.validate()
        } catch let error as RouterConfigError {
            throw ValidationError(error.description)
        }
        let command = serveCommand.map { $0.split(separator: " ").map(String.init) } ?? [Self.selfExecutable(), "serve"]
        var options = RankLauncher.Options(serveCommand: command, environment: ProcessInfo.processInfo.environment)
        options.startupTimeout = startupTimeout
        options.shutdownTimeout = shutdownTimeout
        do {
            let status = try RankLauncher(plan: plan, options: options).run()
            if status != 0 { throw ExitCode(status) }
        } catch let error as LaunchError {
            FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }

    /// This executable's path (to start `pagoda serve`).
    private static func selfExecutable() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
    }
}
