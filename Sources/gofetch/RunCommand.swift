import ArgumentParser

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a command with tracing, prediction and prefetching: the one-command path.",
        discussion: """
            Starts an in-process daemon, runs the command and all its children with the
            preload shim, predicts what they read next (Markov, intra-file patterns,
            epoch remaining set, picked per stream by measured accuracy) and warms the
            page cache ahead of them inside the budgets of the config. Every Python
            interpreter the command starts loads gofetch's client, which announces each
            torch DataLoader epoch's files in the order the loader will read them (no
            change to the script; --no-python-hook turns it off). The folders the
            command line names (an argument that is a folder, or an absolute folder
            path in the script or configuration file it names) are warmed from the
            job's start as its data set, until its opens show it reads elsewhere
            (--no-command-line-hints turns it off). Prints a summary on standard error
            and exits with the command's exit code.

            Example: gofetch run --config config.yaml -- python3 train.py
            """
    )

    @OptionGroup var options: CommonOptions

    @OptionGroup var source: TraceSourceOptions

    @Option(help: ArgumentHelp("Socket for this run (default: a private one beside daemon.socket_path).", valueName: "path"))
    var socket: String?

    @Flag(help: "Print the summary as JSON instead of a table.")
    var json = false

    @Flag(name: .customLong("no-python-hook"), help: "Do not load the Python client into the job's interpreters (no automatic DataLoader lookahead; trace.python_hook: false does the same).")
    var noPythonHook = false

    @Flag(name: .customLong("no-command-line-hints"), help: "Do not warm the folders the command line names before the job opens them (prefetcher.command_line_hints: false does the same).")
    var noCommandLineHints = false

    @Option(help: ArgumentHelp("When the command ends, write the run's HTML report (as `gofetch report`) to this file.", valueName: "file"))
    var report: String?

    @Argument(parsing: .postTerminator, help: "The command to run, after --.")
    var command: [String] = []

    func validate() throws {
        guard !command.isEmpty else {
            throw ValidationError("no command given; put it after --, as in: gofetch run -- python3 train.py")
        }
    }

    func run() async throws {
        try await runJob(command, options: options, source: source, socket: socket, json: json, prefetch: true, pythonHook: !noPythonHook, commandLineHints: !noCommandLineHints, title: "run", report: report)
    }
}
