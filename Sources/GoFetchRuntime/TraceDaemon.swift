import Foundation
import GoFetchConfig
import GoFetchEvents
import GoFetchIngest
import GoFetchMetrics
import GoFetchSchedule
import GoFetchStore
import GoFetchSystem
import GoFetchTraceSources
import Logging

/// The daemon's running parts for tracing: store, writer, ingest pipeline and
/// receive thread, wired from a ``Configuration``. `gofetch daemon` runs it as a
/// service; `gofetch trace` runs it in-process around one command.
public final class TraceDaemon: @unchecked Sendable {
    public let configuration: Configuration
    public let store: TraceStore
    public let runID: Int64
    public let ingestStatistics = IngestStatistics()
    public let storeStatistics = StoreStatistics()
    public let server: IngestServer
    private let writer: StoreWriter
    /// Prediction and prefetching; `nil` when only tracing.
    public let engine: PrefetchEngine?
    /// The CSV and Prometheus outputs; `nil` when only tracing.
    public let metrics: MetricsReporter?
    public private(set) var prometheus: PrometheusServer?
    /// Lists folders for prediction (data-set trees; for the GRU, the folders the job
    /// uses); `nil` when not prefetching.
    public private(set) var lister: DirectoryLister?
    private let logger: Logger
    private var running = false

    /// Opens the store and prepares the socket; nothing runs until ``start()``.
    /// - Parameters:
    ///   - socketPath: overrides `daemon.socket_path`.
    ///   - command: recorded with the run.
    ///   - prefetch: predict and warm the page cache, not only record.
    ///   - kernelSource: a kernel trace source (fanotify) ingested beside the socket's clients.
    ///   - onCommit: called on the writer thread after each committed transaction.
    public init(
        configuration: Configuration, socketPath: String? = nil, command: String, source: String,
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
        writer = StoreWriter(
            store: store, runID: runID, capacity: configuration.storage.queueCapacity,
            batchSize: configuration.storage.batchSize, statistics: storeStatistics, logger: logger, onCommit: onCommit)
        var sinks: [any EventSink] = configuration.storage.recordEvents ? [writer] : []
        let shares = configuration.daemon.userCPUShare > 0 ? UserShares(share: configuration.daemon.userCPUShare) : nil
        if prefetch {
            let lister = DirectoryLister(options: .init(maxTreeFiles: min(1_000_000, configuration.ingest.maxFiles / 2)))
            self.lister = lister
            let engine = PrefetchEngine(configuration: configuration, knownFiles: known, lister: lister, shares: shares, logger: logger)
            let modelPath = configuration.predictor.baselineModelPath
            if configuration.predictor.baselineEnabled && FileManager.default.fileExists(atPath: modelPath) {
                do {
                    let loaded = try engine.loadMarkovModel(path: modelPath)
                    logger.info("loaded Markov model", metadata: ["path": "\(modelPath)", "contexts": "\(loaded.contexts)", "skipped": "\(loaded.skipped)"])
                } catch {
                    logger.warning("Markov model not loaded; learning from scratch", metadata: ["error": "\(error)"])
                }
            }
            sinks.append(engine)
            self.engine = engine
            let ingest = ingestStatistics, store = storeStatistics
            metrics = MetricsReporter(
                csvPath: configuration.metrics.csvEnabled ? MetricsReporter.csvPath(configuration) : nil, store: self.store, runID: runID,
                intervalSeconds: configuration.metrics.intervalSeconds, logger: logger
            ) { [unowned engine] in
                MetricsSample(
                    wallNanoseconds: Clock.wallNanoseconds(), accounting: engine.accounting(),
                    outstandingBytes: engine.scheduler.statistics.outstandingBytes.value,
                    budgetBytes: engine.scheduler.statistics.effectiveBudget.value,
                    events: ingest.eventsAccepted.value,
                    eventsDropped: ingest.clientDropped.value + store.dropped.value + engine.droppedEvents.value,
                    predictions: engine.predictions.value, epoch: engine.choiceCounts.epochs)
            }
        } else {
            engine = nil
            metrics = nil
        }
        let pipeline = IngestPipeline(
            catalog: catalog, tableCapacity: configuration.ingest.maxOpenFiles, sinks: sinks, statistics: ingestStatistics,
            timing: ReadTiming(configuration))
        server = IngestServer(
            socketPath: socketPath ?? configuration.daemon.socketPath, socketMode: configuration.daemon.socketMode,
            maxClients: configuration.daemon.maxClients, shares: shares, pipeline: pipeline, statistics: ingestStatistics, logger: logger)
        server.kernelSource = kernelSource
        server.storeNanosecondsPerEvent = { [storeStatistics] in storeStatistics.nanosecondsPerEvent }
        pipeline.lister = lister
        // The GRU names files by their place in their folder: list the folders the job uses.
        pipeline.listOpenedFolders = engine?.gru != nil
    }

    public func start() throws(IngestServerError) {
        writer.start()
        engine?.start()
        lister?.start()
        if let metrics {
            metrics.start()
            startPrometheus(metrics)
        }
        do {
            try server.start()
        } catch {
            lister?.stop()
            engine?.stop()
            prometheus?.stop()
            metrics?.stop()
            writer.stop()
            throw error
        }
        running = true
        logger.info("listening", metadata: ["socket": "\(server.socketPath)", "db": "\(store.path)", "run": "\(runID)"])
    }

    /// Drains the clients, commits everything, closes the run.
    public func stop() {
        guard running else { return }
        running = false
        server.stop()
        lister?.stop()
        engine?.stop()
        prometheus?.stop()
        metrics?.stop()
        writer.stop()
        applyRetention()
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
    }

    /// Serves `metrics.prometheus_listen` when set; a failure is logged, never fatal.
    private func startPrometheus(_ metrics: MetricsReporter) {
        let text = configuration.metrics.prometheusListen
        guard !text.isEmpty, let address = ListenAddress(text) else { return }
        let server = PrometheusServer(address: address, registry: metrics.registry, logger: logger) { metrics.refreshRegistry() }
        do {
            try server.start()
            prometheus = server
            logger.info("serving Prometheus metrics", metadata: ["address": "\(address)", "port": "\(server.port)"])
        } catch {
            logger.warning("Prometheus metrics not served", metadata: ["address": "\(address)", "error": "\(error)"])
        }
    }

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
        RunSummary(ingest: ingestStatistics, store: storeStatistics, engine: engine, listing: lister?.statistics)
    }
}
