import ArgumentParser

/// The registered verbs. Each verb lives in its own file (`ServeCommand.swift`, ...).
enum PagodaSubcommands {
    static let all: [ParsableCommand.Type] = [
        ServeCommand.self, GenerateCommand.self, TokenizeCommand.self, DetokenizeCommand.self,
        ProxyCommand.self, DisaggProxyCommand.self, LaunchCommand.self, BenchCommand.self, MakeRandomModelCommand.self,
        EngineCoreCommand.self, WorkerCommand.self,
    ]
}
