import ArgumentParser
import Foundation

/// The `pagoda` command line: one subcommand per verb, vLLM's flag names.
@main
struct Pagoda: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pagoda",
        abstract: "Pagoda: LLM serving in Swift (vLLM-compatible command line).",
        subcommands: PagodaSubcommands.all)

    /// Like ArgumentParser's default entry point, except that a usage error (unknown flag, bad
    /// value) is one line on stderr and a non-zero exit, without the usage text after it; `--help`
    /// and `help` still print the full help.
    static func main() async {
        let command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            exitOneLine(error)
        }
        do {
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                var syncCommand = command
                try syncCommand.run()
            }
        } catch {
            exitOneLine(error)
        }
    }

    private static func exitOneLine(_ error: Error) -> Never {
        // A command that already reported its failure exits with its code and says nothing more.
        if let exitCode = error as? ExitCode { Foundation.exit(exitCode.rawValue) }
        let code = exitCode(for: error)
        // Help, version and clean exits keep ArgumentParser's own output.
        if code == .success { exit(withError: error) }
        let message = fullMessage(for: error)
            .split(separator: "\n", omittingEmptySubsequences: true)
            .first.map(String.init) ?? "\(error)"
        FileHandle.standardError.write(Data(((message.hasPrefix("Error") || message.hasPrefix("error")) ? message : "Error: \(message)").utf8 + [10]))
        Foundation.exit(code.rawValue)
    }
}
