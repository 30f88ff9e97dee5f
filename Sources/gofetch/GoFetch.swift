import ArgumentParser

@main
struct GoFetch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gofetch",
        abstract: "Trace what a training job reads, predict what it reads next, warm the page cache ahead of it.",
        discussion: """
            Without a config file every setting has its default (docs/config.md lists them).
            Every subcommand takes --config FILE and --db PATH.
            """,
        subcommands: [RunCommand.self, TraceCommand.self, DaemonCommand.self, TrainCommand.self, EvalCommand.self, StatsCommand.self, ReportCommand.self, CacheCommand.self, EnvCommand.self, DoctorCommand.self]
    )
}
