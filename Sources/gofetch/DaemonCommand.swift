import ArgumentParser
import Foundation
import GoFetchRuntime
import GoFetchTraceSources
import Logging
import ServiceLifecycle

struct DaemonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract: "Run the long-lived daemon that clients attach to through its socket.",
        discussion: """
            Clients attach with LD_PRELOAD=libgofetch_preload.so (and GOFETCH_SOCKET when
            daemon.socket_path is not the default) or through the Python hook.
            SIGTERM or SIGINT stops it cleanly: every received event is committed first.
            """
    )

    @OptionGroup var options: CommonOptions

    @Option(help: ArgumentHelp("Listen here; overrides daemon.socket_path.", valueName: "path"))
    var socket: String?

    @Flag(help: "Print a line on standard output after every committed transaction.")
    var reportCommits = false

    @Flag(help: "Print the summary at exit as JSON instead of a table.")
    var json = false

    @OptionGroup var source: TraceSourceOptions

    @Option(name: .customLong("trace-pid"), help: ArgumentHelp("fanotify, ebpf: trace this process and the processes it starts from now on (repeatable).", valueName: "pid"))
    var tracePIDs: [Int32] = []

    @Option(name: .customLong("trace-cgroup"), help: ArgumentHelp("fanotify, ebpf: trace the processes of this cgroup folder and of the cgroups below it, and what they start (v1 or v2; repeatable; processes moved in later are traced too).", valueName: "path"))
    var traceCgroups: [String] = []

    func validate() throws {
        if source.backend != .preload && tracePIDs.isEmpty && traceCgroups.isEmpty {
            throw ValidationError("--backend \(source.backend.rawValue) needs --trace-pid PID or --trace-cgroup PATH: the kernel sees every process, gofetch traces only the trees and cgroups you name")
        }
        if source.backend == .preload && !(tracePIDs.isEmpty && traceCgroups.isEmpty) {
            throw ValidationError("--trace-pid and --trace-cgroup choose processes for --backend fanotify or ebpf; with preload, the processes that load the shim are traced")
        }
    }

    func run() async throws {
        let configuration = try options.loadConfiguration()
        let logger = options.makeLogger(label: "gofetch.daemon")
        var onCommit: (@Sendable (Int, Int) -> Void)?
        if reportCommits {
            onCommit = { batches, events in
                let line = "committed batches=\(batches) events=\(events)\n"
                FileHandle.standardOutput.write(Data(line.utf8))
            }
        }
        let kernelSource = try source.makeKernelSource(configuration)
        for pid in tracePIDs { kernelSource?.trace(pid: UInt32(bitPattern: pid)) }
        var cgroups: CgroupTracer?
        if let kernelSource, !traceCgroups.isEmpty {
            cgroups = try CgroupTracer(paths: traceCgroups, source: kernelSource)
        }
        let daemon = try TraceDaemon(
            configuration: configuration, socketPath: socket, command: "daemon", source: "daemon", prefetch: true,
            kernelSource: kernelSource, logger: logger, onCommit: onCommit)
        // Each part starts after the one before it (the cgroups' processes are traced
        // before ingest listens); SIGTERM or SIGINT stops them in reverse; then the run is closed.
        var services: [any Service] = []
        var first: StartGate?
        if let cgroups {
            let tracer = ComponentService.chain([("cgroup tracer", cgroups)])
            services += tracer
            first = tracer.last?.started
        }
        services += daemon.services(after: first)
        services.append(RetentionService(daemon: daemon))
        try await ServiceGroup(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
        daemon.finish()
        if json {
            try printJSON(daemon.summary())
            return
        }
        var text = daemon.summary().render(title: "daemon")
        if let cgroups {
            text += "\n  \("cgroups".padding(toLength: 22, withPad: " ", startingAt: 0))\(cgroups.processesTraced.value) processes traced from \(cgroups.paths.count) cgroup folder(s); \(cgroups.overBounds.value) groups or pids over the bounds"
        }
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
}

/// Applies `storage.retention` every five minutes until graceful shutdown.
struct RetentionService: Service {
    let daemon: TraceDaemon

    func run() async {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(300))
                if Task.isCancelled { break }
                daemon.applyRetention()
            }
        }
    }
}
