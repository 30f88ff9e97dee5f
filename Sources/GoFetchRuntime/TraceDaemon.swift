import Foundation
import GoFetchConfig
import GoFetchEvents
import GoFetchIngest
import GoFetchExecute
import GoFetchMetrics
import GoFetchPredict
import GoFetchSchedule
import GoFetchStore
import GoFetchSystem
import GoFetchTraceSources
import Logging

/// The daemon's running parts, wired from a ``Configuration``: store and writer,
/// ingest pipeline and receive thread, and when prefetching the engine, the lister
/// and the metrics. ``start()`` starts them in ``components``' order; ``services``
/// runs them in a swift-service-lifecycle `ServiceGroup`, which stops them in the
/// reverse order (ingest first, the store writer last); ``finish()`` then closes
/// the run. `gofetch daemon` runs the group until SIGTERM; `gofetch trace` and
/// `run` run it with the job as the service whose exit ends it.
public final class TraceDaemon: @unchecked Sendable {
    public let configuration: Configuration
    public let store: TraceStore
    public let runID: Int64
    public let ingestStatistics = IngestStatistics()
    public let storeStatistics = StoreStatistics()
    public let server: IngestServer
    private let writer: StoreWriter
    /// Copies the runs to the cluster's store (`storage.url`); `nil` without one.
    private let copier: ClusterCopier?
    public let clusterStatistics = ClusterStatistics()
    /// Prediction and prefetching; `nil` when only tracing.
    public let engine: PrefetchEngine?
    /// The CSV and Prometheus outputs; `nil` when only tracing.
    public let metrics: MetricsReporter?
    /// Lists folders for prediction (data-set trees; for the GRU, the folders the job
    /// uses); `nil` when not prefetching.
    public let lister: DirectoryLister?
    /// What runs on threads of its own, in the order it starts: nothing is received
    /// (ingest, last) before what it goes to runs.
    public let components: [(name: String, component: any ThreadedComponent)]
    private let logger: Logger
    /// Started by ``start()`` (not by a service group), so ``stop()`` stops the components.
    private var started = false
    private var finished = false
    /// When it was made (the monotonic clock): the summary's wall time runs from here.
    private let createdAt = Clock.monotonicNanoseconds()

    /// Opens the store and prepares the socket; nothing runs until ``start()``.
    /// - Parameters:
    ///   - socketPath: overrides `daemon.socket_path`.
    ///   - command: recorded with the run.
    ///   - arguments: the job's command line, when this daemon runs it (`gofetch run`):
    ///     the folders it names are warmed from the start (``DataSetHints``).
    ///   - prefetch: predict and warm the page cache, not only record.
    ///   - kernelSource: a kernel trace source (fanotify) ingested beside the socket's clients.
    ///   - onCommit: called on the writer thread after each committed transaction.
    public init(
        configuration: Configuration, socketPath: String? = nil, command: String, arguments: [String]? = nil, source: String,
        prefetch: Bool = false, kernelSource: (any KernelTraceSource)? = nil, logger: Logger,
        onCommit: (@Sendable (_ batches: Int, _ events: Int) -> Void)? = nil
    ) throws(TraceStoreError) {
        self.configuration = configuration
        self.logger = logger
        store = try TraceStore(path: configuration.storage.dbPath)
        let deleted = try store.applyRetention(
            maxAgeDays: configuration.storage.retentionMaxAgeDays, maxEvents: configuration.storage.retentionMaxEvents)
        storeStatistics.retentionDeleted.add(deleted)
        runID = try store.beginRun(command: command, source: source)
        let known = try store.files(limit: configuration.ingest.maxFiles)
        let catalog = FileCatalog(capacity: configuration.ingest.maxFiles, existing: known, maxID: try store.maxFileID())
        let clusterAddress: ClusterStoreAddress?
        do {
            clusterAddress = try configuration.storage.clusterAddress()
        } catch {
            throw TraceStoreError(path: configuration.storage.url, problem: "storage.url: \(error)")
        }
        if let clusterAddress {
            copier = ClusterCopier(address: clusterAddress, store: store, node: configuration.storage.node, job: configuration.storage.job,
                                   currentRun: runID, statistics: clusterStatistics, logger: logger)
        } else {
            copier = nil
        }
        writer = StoreWriter(
            store: store, runID: runID, capacity: configuration.storage.queueCapacity,
            batchSize: configuration.storage.batchSize, statistics: storeStatistics, logger: logger, onCommit: onCommit)
        var sinks: [any EventSink] = configuration.storage.recordEvents ? [writer] : []
        var components: [(name: String, component: any ThreadedComponent)] = [("store writer", writer)]
        if let copier { components.append(("cluster copier", copier)) }
        var lister: DirectoryLister?
        let shares = configuration.daemon.userCPUShare > 0 ? UserShares(share: configuration.daemon.userCPUShare) : nil
        let pace = IngestPace()
        if prefetch {
            let folders = DirectoryLister(options: .init(maxTreeFiles: min(1_000_000, configuration.ingest.maxFiles / 2)))
            lister = folders
            if let clusterAddress { Self.fetchClusterModels(clusterAddress, configuration: configuration, logger: logger) }
            let engine = Self.makeEngine(configuration: configuration, knownFiles: known, lister: folders, shares: shares, pace: pace, logger: logger)
            sinks.append(engine)
            self.engine = engine
            let ingest = ingestStatistics, store = storeStatistics
            metrics = MetricsReporter(
                csvPath: configuration.metrics.csvEnabled ? MetricsReporter.csvPath(configuration) : nil, store: self.store, runID: runID,
                intervalSeconds: configuration.metrics.intervalSeconds, logger: logger
            ) { [unowned engine] in
                MetricsSample(
                    wallNanoseconds: Clock.wallNanoseconds(), accounting: engine.accounting(),
                    outstandingBytes: engine.schedulerStatistics.outstandingBytes.value,
                    budgetBytes: engine.schedulerStatistics.effectiveBudget.value,
                    events: ingest.eventsAccepted.value,
                    eventsDropped: ingest.clientDropped.value + store.dropped.value + engine.droppedEvents.value,
                    predictions: engine.predictions.value, epoch: engine.choiceCounts.epochs)
            }
            // The metrics start before (so stop after) the engine: their last sample is
            // taken once the engine has drained what ingest handed it.
            if let metrics {
                components.append(("metrics reporter", metrics))
                let text = configuration.metrics.prometheusListen
                if !text.isEmpty, let address = ListenAddress(text) {
                    let server = PrometheusServer(address: address, registry: metrics.registry, logger: logger) { metrics.refreshRegistry() }
                    components.append(("prometheus", PrometheusComponent(server: server, logger: logger)))
                }
            }
            components += [("prefetch engine", engine), ("directory lister", folders)]
            // A job run before under gofetch that read a folder tree in an order nothing
            // predicted starts warming that tree now, during its start-up (importing
            // its libraries, building its model), not after its first opens show it.
            // As the job: gofetch's own user, groups and pid (the job inherits them);
            // under root, whose job may take another user (setpriv, su), as no one
            // until the job's first event, then as that process (PrefetchEngine.anyone).
            let client = geteuid() == 0 ? nil : (uid: geteuid(), gid: getegid(), pid: UInt32(bitPattern: getpid()))
            if source == "run", let last = try? self.store.lastDataSetRun(command: command, source: source, before: runID),
               (try? Syscall.fileStatus(last.root, followSymlinks: true))?.kind == .directory {
                engine.seedDataSet(root: last.root, client: client, awaitOrder: true)
                // In the order the last run first opened its files: a job whose order
                // repeats (a shuffle its script seeds) reads its first epoch in it. Read
                // off the start's path: a long run's events take a while to go through.
                let store = self.store, limit = engine.tree.options.maxFiles
                Thread.detachNewThread {
                    let first = (try? store.firstOpenOrder(runID: last.runID, limit: limit)) ?? []
                    engine.preferOrder(first)
                    // Then every epoch's order, for the epochs after the first: a longer
                    // read, needed only once the first epoch ends. Bounded: 4 M files in
                    // all the passes (32 MiB), from the events of as many passes of
                    // the first, 16 events a file.
                    guard !first.isEmpty else { return }
                    let passes = min(Self.maxEpochOrders, max(1, Self.maxEpochOrderFiles / first.count))
                    // With their number, when the bounds cut none: the scan ahead warms
                    // no epoch past the last run's last one.
                    guard passes > 1, let read = try? store.openPasses(
                        runID: last.runID, passes: passes, limit: Self.maxEpochOrderFiles,
                        maxEvents: first.count * passes * 16) else { return }
                    engine.preferEpochOrders(read.orders, epochs: read.epochs)
                }
            } else if let arguments, configuration.prefetcher.commandLineHints {
                // A first run: the folders its command line names, as guesses. Looked up
                // on a thread of their own (the storage may be slow): the job starts now.
                let hints = DataSetHints(filter: TracePathFilter(configuration),
                                         workingDirectory: FileManager.default.currentDirectoryPath,
                                         home: ProcessInfo.processInfo.environment["HOME"])
                Thread.detachNewThread {
                    for folder in hints.folders(in: arguments) {
                        engine.seedDataSet(root: folder, client: client, tentative: true)
                    }
                }
            }
        } else {
            engine = nil
            metrics = nil
        }
        // The GRU names files by their place in their folder: list the folders the job uses.
        let pipeline = IngestPipeline(
            catalog: catalog, tableCapacity: configuration.ingest.maxOpenFiles, sinks: sinks, statistics: ingestStatistics,
            timing: ReadTiming(configuration), lister: lister, listOpenedFolders: engine?.gru != nil)
        server = IngestServer(
            socketPath: socketPath ?? configuration.daemon.socketPath, socketMode: configuration.daemon.socketMode,
            maxClients: configuration.daemon.maxClients, shares: shares, pipeline: pipeline, kernelSource: kernelSource,
            storeNanosecondsPerEvent: { [storeStatistics] in storeStatistics.nanosecondsPerEvent },
            pace: pace, statistics: ingestStatistics, logger: logger)
        let listening: @Sendable () -> Void = { [logger, server, store, runID] in
            logger.info("listening", metadata: ["socket": "\(server.socketPath)", "db": "\(store.path)", "run": "\(runID)"])
        }
        components.append(("ingest server", AnnouncedComponent(server, announce: listening)))
        self.components = components
        self.lister = lister
    }

    /// The prefetch engine and the parts it runs, each built through its initialiser:
    /// the predictors (with the saved models loaded), the scheduler, the ledger whose
    /// fates feed the scheduler's budget, the clients' cgroup budget and the executor.
    public static func makeEngine(
        configuration: Configuration, knownFiles: [FileRecord], lister: DirectoryLister?, shares: UserShares?, pace: IngestPace? = nil,
        logger: Logger
    ) -> PrefetchEngine {
        let scheduler = PrefetchScheduler(options: .init(configuration), now: Clock.monotonicNanoseconds())
        let predictors = Predictors(
            configuration: configuration, knownFiles: knownFiles,
            maxRequestBytes: UInt64(configuration.prefetcher.maxPrefetchSizeMB * 1_048_576), logger: logger)
        var ledgerOptions = PrefetchLedger.Options()
        ledgerOptions.timing = ReadTiming(configuration)
        ledgerOptions.windowNanoseconds = scheduler.options.expiryNanoseconds
        let ledger = PrefetchLedger(options: ledgerOptions) { fate, evicted, uid in
            scheduler.feedback(fate, evicted: evicted, uid: uid, now: Clock.monotonicNanoseconds())
        }
        return PrefetchEngine(
            configuration: configuration, knownFiles: knownFiles, predictors: predictors, scheduler: scheduler, ledger: ledger,
            cgroups: CgroupBudget(fraction: configuration.prefetcher.cgroupBudgetFraction),
            makeExecutor: { onResult in
                PrefetchExecutor(
                    threads: configuration.prefetcher.executorThreads, capacity: 256,
                    method: PrefetchMethod(rawValue: configuration.prefetcher.method.rawValue), logger: logger, onResult: onResult)
            },
            lister: lister, shares: shares, pace: pace, logger: logger)
    }

    /// Starts every component in order; if one fails, those already started are stopped
    /// (in reverse) and its error is thrown.
    public func start() throws {
        for (index, part) in components.enumerated() {
            do {
                try part.component.start()
            } catch {
                for earlier in components[..<index].reversed() { earlier.component.stop() }
                throw error
            }
        }
        started = true
    }

    /// The components as services for one `ServiceGroup`, each started after the one
    /// before it (and the first after `after`); the last one's `started` gate opens
    /// when the daemon listens.
    public func services(after: StartGate? = nil) -> [ComponentService] {
        ComponentService.chain(components, after: after)
    }

    /// Stops every component (in reverse order) and closes the run: for a caller that
    /// runs no `ServiceGroup` (tests, benchmarks).
    public func stop() {
        guard started else { return }
        started = false
        for part in components.reversed() { part.component.stop() }
        finish()
    }

    /// Once the components have stopped: the run's summary stored, the run closed, the
    /// rest of it copied to the cluster's store, retention (once; later calls do nothing).
    public func finish() {
        guard !finished else { return }
        finished = true
        do {
            // What `gofetch report` shows beside the events: the summary, per-epoch fates, lead times.
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            try store.saveResult(String(decoding: try encoder.encode(summary()), as: UTF8.self), runID: runID)
        } catch {
            logger.error("the run's summary was not stored", metadata: ["error": "\(error)"])
        }
        do {
            try store.endRun(runID)
        } catch {
            logger.error("closing the run failed", metadata: ["error": "\(error)"])
        }
        // The run is complete in this machine's store: the rest of it to the cluster's,
        // then retention (which must not take events the copier has yet to send).
        copier?.finish(seconds: Self.clusterFinishSeconds)
        applyRetention()
    }

    /// A node new to the cluster starts from the models fitted on the others' runs:
    /// each model file that is missing here is fetched from the cluster's store.
    static func fetchClusterModels(_ address: ClusterStoreAddress, configuration: Configuration, logger: Logger) {
        let missing = [("markov", configuration.predictor.baselineModelPath), ("gru", configuration.predictor.mlModelPath)]
            .filter { !FileManager.default.fileExists(atPath: $0.1) }
            .map { (name: $0.0, file: $0.1) }
        guard !missing.isEmpty else { return }
        do {
            // One connection, at most 3 s to connect: the job waits for the daemon to listen.
            for name in try ClusterModels.fetch(address, models: missing, logger: logger) {
                logger.notice("model fetched from the cluster's store", metadata: ["model": "\(name)"])
            }
        } catch {
            logger.warning("no model from the cluster's store", metadata: ["error": "\(error)"])
        }
    }

    /// The last run's epoch orders a second run takes (``TraceStore/openPasses``): at
    /// most this many epochs, and this many files in all of them.
    static let maxEpochOrders = 64
    static let maxEpochOrderFiles = 4_000_000

    /// How long a stopping daemon tries to copy the rest of its run to the cluster's
    /// store; what is left waits in this machine's store for the next daemon.
    static let clusterFinishSeconds = 5.0

    /// Deletes events beyond `storage.retention`; failures are logged, never fatal.
    public func applyRetention() {
        do {
            let deleted = try store.applyRetention(
                maxAgeDays: configuration.storage.retentionMaxAgeDays, maxEvents: configuration.storage.retentionMaxEvents)
            storeStatistics.retentionDeleted.add(deleted)
        } catch {
            logger.error("retention failed", metadata: ["error": "\(error)"])
        }
    }

    /// Waits (polling) until no client is connected or `timeout` seconds passed.
    public func waitForClientsToLeave(timeout: Double) async {
        let deadline = Clock.monotonicNanoseconds() + UInt64(timeout * 1e9)
        while server.connectedClients > 0 && Clock.monotonicNanoseconds() < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    public func summary() -> RunSummary {
        var summary = RunSummary(ingest: ingestStatistics, store: storeStatistics, engine: engine, listing: lister?.statistics,
                                 cluster: copier == nil ? nil : clusterStatistics)
        // The process's: a daemon runs one TraceDaemon, and its threads are all gofetch's work.
        let (user, system) = Syscall.ownCPUTime()
        summary.cpu = RunSummary.CPUTime(userNanoseconds: user, systemNanoseconds: system,
                                         wallNanoseconds: Clock.monotonicNanoseconds() &- createdAt)
        return summary
    }
}
