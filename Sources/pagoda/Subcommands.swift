import ArgumentParser

/// The registered verbs. Each verb lives in its own file (`ServeCommand.swift`, ...).
enum PagodaSubcommands {
    static let all: [ParsableCommand.Type] = []
}
