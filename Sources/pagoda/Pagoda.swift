import ArgumentParser

/// The `pagoda` command line: one subcommand per verb, vLLM's flag names.
@main
struct Pagoda: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pagoda",
        abstract: "Pagoda: LLM serving in Swift (vLLM-compatible command line).",
        subcommands: PagodaSubcommands.all)
}
