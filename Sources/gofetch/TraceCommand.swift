import ArgumentParser
import Dispatch
import Foundation

struct TraceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Run a command and record every file read it and its children make.",
        discussion: """
            Starts an in-process daemon on a private socket, runs the command with the
            preload shim, waits for it, commits the trace, prints a summary on standard
            error, and exits with the command's exit code.

            Example: gofetch trace -- python3 train.py --epochs 2
            """
    )

    @OptionGroup var options: CommonOptions

    @OptionGroup var source: TraceSourceOptions

    @Option(help: ArgumentHelp("Socket for this trace (default: a private one beside daemon.socket_path).", valueName: "path"))
    var socket: String?

    @Flag(help: "Print the summary as JSON instead of a table.")
    var json = false

    @Option(help: ArgumentHelp("When the command ends, write the run's HTML report (as `gofetch report`) to this file.", valueName: "file"))
    var report: String?

    @Argument(parsing: .postTerminator, help: "The command to trace, after --.")
    var command: [String] = []

    func validate() throws {
        guard !command.isEmpty else {
            throw ValidationError("no command given; put it after --, as in: gofetch trace -- python3 train.py")
        }
    }

    func run() async throws {
        try await runJob(command, options: options, source: source, socket: socket, json: json, prefetch: false, pythonHook: false, title: "trace", report: report)
    }
}
