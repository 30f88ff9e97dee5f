import ArgumentParser
import Foundation
import GoFetchRuntime

struct EnvCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "env",
        abstract: "Print the exports that attach a shell's jobs to a running `gofetch daemon`.",
        discussion: """
            Every program started from the shell afterwards loads the preload shim, which
            sends its reads to the daemon's socket, and every Python interpreter loads
            gofetch's client, which announces each torch DataLoader epoch's files in the
            order the loader will read them. Existing LD_PRELOAD and PYTHONPATH entries
            are kept after gofetch's.

            Example: eval "$(gofetch env --config config.yaml)"
            """
    )

    @OptionGroup var options: CommonOptions

    @Option(help: ArgumentHelp("The daemon's socket (default: daemon.socket_path).", valueName: "path"))
    var socket: String?

    @Flag(name: .customLong("no-python-hook"), help: "Leave Python interpreters alone (no automatic DataLoader lookahead).")
    var noPythonHook = false

    @Flag(name: .customLong("no-preload"), help: "No preload shim: the daemon traces these jobs with a kernel source (--trace-cgroup, --trace-pid); the Python client then only announces.")
    var noPreload = false

    func run() throws {
        var configuration = try options.loadConfiguration()
        let socketPath = socket ?? configuration.daemon.socketPath
        let base = ProcessInfo.processInfo.environment
        var environment = base
        let client = noPythonHook || !configuration.trace.pythonHook ? nil : PythonClient.locate()
        // The client's own modules are not the job's data.
        if let client { configuration.trace.excludePrefixes.append(client) }
        if !noPreload {
            let library = try PreloadLibrary.locate(configured: configuration.trace.preloadLibrary)
            environment = PreloadLibrary.environment(base: environment, library: library, socketPath: socketPath, trace: configuration.trace)
        }
        if !noPythonHook && configuration.trace.pythonHook {
            guard let client else {
                throw ValidationError("the Python client was not found; set GOFETCH_PYTHON_CLIENT to the folder holding gofetch/ and inject/, or pass --no-python-hook")
            }
            environment = PythonClient.environment(base: environment, client: client, socketPath: socketPath,
                                                   mode: noPreload ? .announce : .shim, statusPath: nil)
        }
        environment["GOFETCH_SOCKET"] = socketPath
        var lines: [String] = []
        for key in environment.keys.sorted() where environment[key] != base[key] {
            if let value = environment[key] {
                lines.append("export \(key)=\(Self.shellQuoted(value))")
            } else {
                lines.append("unset \(key)")
            }
        }
        for key in base.keys.sorted() where environment[key] == nil {
            lines.append("unset \(key)")
        }
        print(lines.joined(separator: "\n"))
    }

    /// `value` in single quotes, safe for any POSIX shell.
    static func shellQuoted(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
