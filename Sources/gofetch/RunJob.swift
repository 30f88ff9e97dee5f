import ArgumentParser
import Dispatch
import Foundation
import GoFetchEvents
import GoFetchMetrics
import GoFetchRuntime
import GoFetchSystem
import GoFetchTraceSources
import ServiceLifecycle
import Synchronization

/// Runs `command` under an in-process daemon (trace only, or with prefetching),
/// prints the summary on standard error, and exits with the command's exit code.
/// With `pythonHook` (and `trace.python_hook`), every Python interpreter of the job
/// loads the client at start-up and announces its DataLoaders' orders (``PythonClient``).
func runJob(_ command: [String], options: CommonOptions, source: TraceSourceOptions, socket: String?, json: Bool, prefetch: Bool, pythonHook: Bool, commandLineHints: Bool = true, title: String, report: String? = nil) async throws {
    var configuration = try options.loadConfiguration()
    if !commandLineHints { configuration.prefetcher.commandLineHints = false }
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
        arguments: command, source: title, prefetch: prefetch, kernelSource: kernelSource, logger: logger)

    // A kernel source traces the job untouched: no LD_PRELOAD.
    var environment = kernelSource != nil ? ProcessInfo.processInfo.environment : PreloadLibrary.environment(
        base: ProcessInfo.processInfo.environment, library: library, socketPath: socketPath, trace: configuration.trace)
    let pythonStatus = pythonClient.map { _ in "\(socketPath).python" }
    if let pythonClient {
        environment = PythonClient.environment(
            base: environment, client: pythonClient, socketPath: socketPath,
            mode: kernelSource == nil ? .shim : .announce, statusPath: pythonStatus)
    }
    // The daemon's parts start in order, then the job once ingest listens; the job's
    // exit shuts the daemon's parts down in reverse; then the run is closed.
    let parts = daemon.services()
    let job = JobService(command: command, environment: environment, kernelSource: kernelSource, daemon: daemon, after: parts.last?.started)
    do {
        try await ServiceGroup(configuration: ServiceGroupConfiguration(
            services: parts.map { .init(service: $0) } + [.init(service: job, successTerminationBehavior: .gracefullyShutdownGroup)],
            logger: logger)).run()
    } catch {
        daemon.finish()
        throw job.spawnError ?? error
    }
    daemon.finish()
    let exitCode = job.exitCode
    let summary = daemon.summary()
    if let pythonStatus { python = PythonHookReport.collect(statusPath: pythonStatus) }
    let sourceReport = kernelSource?.report()
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
                                  pythonHook: prefetch ? python : nil, source: sourceReport, report: reportPath))
    } else {
        var text = summary.render(title: title)
        if prefetch {
            text += "\n  \("python lookahead".padding(toLength: 22, withPad: " ", startingAt: 0))\(python.text)"
        }
        if let sourceReport {
            text += "\n  \(sourceReport.title.padding(toLength: 22, withPad: " ", startingAt: 0))\(sourceReport.text)"
        }
        text += "\n  \("store".padding(toLength: 22, withPad: " ", startingAt: 0))\(configuration.storage.dbPath) (run \(daemon.runID))"
        if let reportPath { text += "\n  \("report".padding(toLength: 22, withPad: " ", startingAt: 0))\(reportPath)" }
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
    if exitCode != 0 { throw ExitCode(exitCode) }
}

/// The traced command as a service: started once the daemon listens, gofetch's
/// signals go to it, and when it has exited (and the processes it left behind have
/// had a moment to flush) the service ends, which shuts the group down.
final class JobService: Service, Sendable {
    let command: [String]
    let environment: [String: String]
    let kernelSource: (any KernelTraceSource)?
    let daemon: TraceDaemon
    let after: StartGate?
    private let outcome = Mutex<(exitCode: Int32, spawnError: ChildProcessError?)>((0, nil))

    init(command: [String], environment: [String: String], kernelSource: (any KernelTraceSource)?, daemon: TraceDaemon, after: StartGate?) {
        self.command = command
        self.environment = environment
        self.kernelSource = kernelSource
        self.daemon = daemon
        self.after = after
    }

    /// The command's exit code (128 + the signal that ended it), once the service ended.
    var exitCode: Int32 { outcome.withLock { $0.exitCode } }
    /// Why the command could not be started, if it could not.
    var spawnError: ChildProcessError? { outcome.withLock { $0.spawnError } }

    func run() async throws {
        if let after, await !after.wait() { return }
        // The job's first opens happen before spawn returns: trace gofetch's children from now on.
        kernelSource?.traceChildren(of: UInt32(bitPattern: getpid()))
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn(command, environment: environment)
        } catch {
            outcome.withLock { $0.spawnError = error }
            throw error
        }
        kernelSource?.trace(pid: UInt32(bitPattern: child.pid))
        let forwarding = SignalForwarding(to: child, signals: [SIGINT, SIGTERM, SIGHUP])
        let code = await child.exitCode()
        forwarding.cancel()
        outcome.withLock { $0.exitCode = code }
        // Children that outlive the command (daemonised workers) get a moment to flush.
        await daemon.waitForClientsToLeave(timeout: 2)
    }
}
