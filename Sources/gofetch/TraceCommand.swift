import ArgumentParser
import Dispatch
import Foundation
import GoFetchCore

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

/// Runs `command` under an in-process daemon (trace only, or with prefetching),
/// prints the summary on standard error, and exits with the command's exit code.
/// With `pythonHook` (and `trace.python_hook`), every Python interpreter of the job
/// loads the client at start-up and announces its DataLoaders' orders (``PythonClient``).
func runJob(_ command: [String], options: CommonOptions, source: TraceSourceOptions, socket: String?, json: Bool, prefetch: Bool, pythonHook: Bool, title: String, report: String? = nil) async throws {
    var configuration = try options.loadConfiguration()
    let logger = options.makeLogger(label: "gofetch.\(title)")
    var python = PythonHookReport(enabled: false, disabledBecause: pythonHook ? "trace.python_hook is false" : "--no-python-hook")
    var pythonClient: String?
    if pythonHook && configuration.trace.pythonHook {
        pythonClient = PythonClient.locate()
        if let pythonClient {
            // The client's own modules are not the job's data.
            configuration.trace.excludePrefixes.append(pythonClient)
        } else {
            python.disabledBecause = "the Python client was not found (set GOFETCH_PYTHON_CLIENT to the folder holding gofetch/ and inject/)"
        }
    }
    let kernelSource = try source.makeKernelSource(configuration)
    let library = kernelSource == nil ? try PreloadLibrary.locate(configured: configuration.trace.preloadLibrary) : ""

    let socketDirectory = (configuration.daemon.socketPath as NSString).deletingLastPathComponent
    let socketPath = socket ?? "\(socketDirectory.isEmpty ? "." : socketDirectory)/\(title)-\(getpid()).sock"

    let daemon = try TraceDaemon(
        configuration: configuration, socketPath: socketPath, command: command.joined(separator: " "),
        source: title, prefetch: prefetch, kernelSource: kernelSource, logger: logger)
    try daemon.start()

    // A kernel source traces the job untouched: no LD_PRELOAD.
    var environment = kernelSource != nil ? ProcessInfo.processInfo.environment : PreloadLibrary.environment(
        base: ProcessInfo.processInfo.environment, library: library, socketPath: socketPath, trace: configuration.trace)
    let pythonStatus = pythonClient.map { _ in "\(socketPath).python" }
    if let pythonClient {
        environment = PythonClient.environment(
            base: environment, client: pythonClient, socketPath: socketPath,
            mode: kernelSource == nil ? .shim : .announce, statusPath: pythonStatus)
    }
    // The job's first opens happen before spawn returns: trace gofetch's children from now on.
    kernelSource?.traceChildren(of: UInt32(bitPattern: getpid()))
    let child: ChildProcess
    do {
        child = try ChildProcess.spawn(command, environment: environment)
    } catch {
        daemon.stop()
        throw error
    }
    kernelSource?.trace(pid: UInt32(bitPattern: child.pid))
    let forwarding = SignalForwarding(to: child, signals: [SIGINT, SIGTERM, SIGHUP])
    let exitCode = await child.exitCode()
    forwarding.cancel()

    // Children that outlive the command (daemonised workers) get a moment to flush.
    await daemon.waitForClientsToLeave(timeout: 2)
    daemon.stop()
    let summary = daemon.summary()
    if let pythonStatus { python = PythonHookReport.collect(statusPath: pythonStatus) }
    let ebpf = (kernelSource as? EBPFSource).map {
        EBPFReport(records: $0.statistics.records.value, filtered: $0.statistics.filtered.value, kernelDropped: $0.kernelDropped,
                   missedPages: $0.statistics.missedPages.value, missedPagesByFile: $0.missedPagesByPath())
    }
    let fanotify = (kernelSource as? FanotifySource).map {
        FanotifyReport(mode: $0.reportsNames ? "names" : "descriptors", events: $0.statistics.events.value,
                       otherProcesses: $0.statistics.otherProcesses.value, filtered: $0.statistics.filtered.value,
                       unresolved: $0.statistics.unresolved.value, overflows: $0.statistics.overflows.value,
                       pidsReused: $0.statistics.pidsReused.value)
    }
    // The report is the user's to ask for: a failure to write it is said, never the job's exit code.
    var reportPath: String?
    if let report {
        do {
            try ReportPage.forRun(store: daemon.store, runID: daemon.runID, timing: ReadTiming(configuration)).write(to: report)
            reportPath = report
        } catch {
            FileHandle.standardError.write(Data("gofetch: no report written: \(error)\n".utf8))
        }
    }
    if json {
        try printJSON(TraceReport(runID: daemon.runID, database: configuration.storage.dbPath, exitCode: exitCode, summary: summary,
                                  pythonHook: prefetch ? python : nil, ebpf: ebpf, fanotify: fanotify, report: reportPath))
    } else {
        var text = summary.render(title: title)
        if prefetch {
            text += "\n  \("python lookahead".padding(toLength: 22, withPad: " ", startingAt: 0))\(python.text)"
        }
        if let fanotify {
            text += "\n  \("fanotify".padding(toLength: 22, withPad: " ", startingAt: 0))\(fanotify.events) events, files named by \(fanotify.mode); \(fanotify.otherProcesses) of other processes, \(fanotify.filtered) filtered, \(fanotify.unresolved) unresolved, \(fanotify.overflows) queue overflows, \(fanotify.pidsReused) pids reused"
        }
        if let ebpf {
            text += "\n  \("page-cache misses".padding(toLength: 22, withPad: " ", startingAt: 0))\(ebpf.missedPages) pages in \(ebpf.missedPagesByFile.count) files (eBPF; \(ebpf.kernelDropped) records dropped in the kernel)"
        }
        text += "\n  \("store".padding(toLength: 22, withPad: " ", startingAt: 0))\(configuration.storage.dbPath) (run \(daemon.runID))"
        if let reportPath { text += "\n  \("report".padding(toLength: 22, withPad: " ", startingAt: 0))\(reportPath)" }
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
    if exitCode != 0 { throw ExitCode(exitCode) }
}

struct TraceReport: Codable {
    var runID: Int64
    var database: String
    var exitCode: Int32
    var summary: RunSummary
    /// Whether the Python client's lookahead was on (`run` only).
    var pythonHook: PythonHookReport?
    var ebpf: EBPFReport?
    var fanotify: FanotifyReport?
    /// The HTML report written (`--report`).
    var report: String?
}

/// What the fanotify source did: how events named files ("names": folder handle and
/// name; "descriptors": an open file per event), and what it left out.
struct FanotifyReport: Codable {
    var mode: String
    var events: Int
    var otherProcesses: Int
    var filtered: Int
    var unresolved: Int
    var overflows: Int
    /// Pids found to belong to a later process than the one judged (judged again).
    var pidsReused: Int
}

/// What the eBPF source saw besides the events: the pages each file brought in.
struct EBPFReport: Codable {
    var records: Int
    var filtered: Int
    var kernelDropped: Int
    var missedPages: Int
    var missedPagesByFile: [String: Int]
}

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    FileHandle.standardError.write(try encoder.encode(value) + Data("\n".utf8))
}

/// Passes the signals gofetch receives on to the command it runs.
final class SignalForwarding {
    private let sources: [any DispatchSourceSignal]

    init(to child: ChildProcess, signals: [Int32]) {
        sources = signals.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { child.signal(number) }
            source.resume()
            return source
        }
    }

    func cancel() {
        for source in sources { source.cancel() }
    }
}

/// Which trace source records the job.
struct TraceSourceOptions: ParsableArguments {
    enum Backend: String, ExpressibleByArgument, CaseIterable {
        case preload, fanotify, ebpf
    }

    @Option(help: "Trace source: preload (the LD_PRELOAD shim; no root needed, byte ranges and timings), fanotify (kernel marks; root; the job untouched; opens and reads without byte counts) or ebpf (tracepoints; root and BTF; the job untouched; byte counts, read timings and page-cache misses).")
    var backend: Backend = .preload

    @Option(name: .customLong("mark"), help: ArgumentHelp("fanotify: watch the file system holding this path (repeatable; default: trace.include_prefixes, else the current folder).", valueName: "path"))
    var marks: [String] = []

    func makeKernelSource(_ configuration: Configuration) throws -> (any KernelTraceSource)? {
        switch backend {
        case .preload:
            return nil
        case .fanotify:
            var paths = marks.isEmpty ? configuration.trace.includePrefixes : marks
            if paths.isEmpty { paths = [FileManager.default.currentDirectoryPath] }
            return try FanotifySource(paths: paths, filter: TracePathFilter(configuration))
        case .ebpf:
            return try EBPFSource(filter: TracePathFilter(configuration))
        }
    }
}
