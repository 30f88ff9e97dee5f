import Foundation
import GoFetchConfig
import GoFetchEvents
import GoFetchSchedule
import GoFetchStore
import GoFetchSystem
import Logging
import Prometheus

/// Everything the metrics outputs show, taken at one moment. All cumulative since the
/// run started; the CSV turns them into per-interval figures.
public struct MetricsSample: Sendable {
    public var wallNanoseconds: UInt64
    public var accounting: AccountingSnapshot
    public var outstandingBytes: Int
    public var budgetBytes: Int
    public var events: Int
    public var eventsDropped: Int
    public var predictions: Int
    /// Epoch boundaries seen so far.
    public var epoch: Int

    public init(wallNanoseconds: UInt64, accounting: AccountingSnapshot, outstandingBytes: Int, budgetBytes: Int, events: Int, eventsDropped: Int, predictions: Int, epoch: Int = 0) {
        self.wallNanoseconds = wallNanoseconds
        self.accounting = accounting
        self.outstandingBytes = outstandingBytes
        self.budgetBytes = budgetBytes
        self.events = events
        self.eventsDropped = eventsDropped
        self.predictions = predictions
        self.epoch = epoch
    }

    /// The figures as a row of the store's `samples`.
    public var stored: StoredSample {
        let c = accounting.counters
        return StoredSample(
            wallNanoseconds: Int64(bitPattern: wallNanoseconds), epoch: epoch, accesses: c.accesses, coldAccesses: c.coldAccesses,
            coveredAccesses: c.coveredAccesses, stallNanoseconds: Int64(clamping: c.stallNanoseconds), issued: c.issued,
            useful: c.count(.useful), late: c.count(.late), wasted: c.count(.wasted), skipped: c.count(.skipped),
            failed: c.count(.failed), bytesPrefetched: Int64(clamping: c.bytesLoaded), outstandingBytes: outstandingBytes,
            budgetBytes: budgetBytes, events: events, eventsDropped: eventsDropped)
    }
}

/// Writes `metrics_<policy>.csv` every interval (the seed's columns first, then
/// gofetch's), a row of the store's `samples` every second while the figures change
/// (for `gofetch report`), and keeps a Prometheus registry current for
/// ``PrometheusServer``. Runs on its own thread; a failing write is logged once and
/// never stops gofetch.
public final class MetricsReporter: @unchecked Sendable {
    /// The seed's columns, then gofetch's. `docs/metrics.md` defines each.
    public static let csvColumns = [
        "timestamp", "cache_hits", "cache_misses", "prediction_accuracy", "prefetch_latency_ms",
        "run_id", "interval_s", "accesses", "hit_rate", "coverage", "stall_ms",
        "prefetches_issued", "useful", "late", "wasted", "skipped", "failed",
        "bytes_prefetched", "outstanding_bytes", "budget_bytes",
        "prediction_latency_p99_us", "prefetch_latency_p99_ms", "lead_time_p50_ms",
        "predictions", "events", "events_dropped",
    ]

    public let csvPath: String?
    public let registry = PrometheusCollectorRegistry()
    private let runID: Int64
    private let interval: Double
    /// Seconds between the store's samples.
    public static let sampleSeconds = 1.0
    private let store: TraceStore?
    private var lastStored: StoredSample?
    private var storing = true
    /// When the next CSV row and the next sample are due (wall-clock nanoseconds).
    private var rowDue: UInt64 = 0
    private var sampleDue: UInt64 = 0
    private let sample: @Sendable () -> MetricsSample
    private let logger: Logger
    private var handle: FileHandle?
    private var previous: MetricsSample?
    private let wakeUp = DispatchSemaphore(value: 0)
    private var thread: JoinableThread?
    private var stopping = false
    private var running = false
    private let lock = NSLock()
    private let gauges: Gauges
    private var published = PublishedCounters()

    /// - Parameters:
    ///   - csvPath: `nil` writes no CSV.
    ///   - store: where the samples go; `nil` keeps none.
    ///   - sample: takes the current figures (called on the reporter's thread and per scrape).
    public init(csvPath: String?, store: TraceStore? = nil, runID: Int64, intervalSeconds: Double, logger: Logger, sample: @escaping @Sendable () -> MetricsSample) {
        self.csvPath = csvPath
        self.store = store
        self.runID = runID
        self.interval = intervalSeconds
        self.sample = sample
        self.logger = logger
        gauges = Gauges(registry)
    }

    /// The CSV path for a policy: `<directory>/metrics_<policy>.csv`; the directory
    /// defaults to the trace store's.
    public static func csvPath(_ configuration: Configuration) -> String {
        var directory = configuration.metrics.csvDirectory
        if directory.isEmpty {
            directory = (configuration.storage.dbPath as NSString).deletingLastPathComponent
        }
        let name = "metrics_\(configuration.prefetcher.policyType.rawValue).csv"
        return directory.isEmpty ? name : "\(directory)/\(name)"
    }

    public func start() {
        if let csvPath { openCSV(csvPath) }
        rowDue = Clock.wallNanoseconds() + UInt64(interval * 1e9)
        running = true
        thread = JoinableThread(name: "gofetch-metrics-csv") { [self] in
            // The store's series starts with the run.
            if store != nil { report(final: false) }
            while true {
                // Until the next row or sample is due, whichever comes first.
                let now = Clock.wallNanoseconds()
                let due = store != nil && storing ? min(rowDue, sampleDue) : rowDue
                _ = wakeUp.wait(timeout: .now() + .nanoseconds(Int(clamping: due > now ? due - now : 0)))
                // Read before reporting: once stopping is set, the engine's last figures are in.
                let stop = lock.withLock { stopping }
                report(final: stop)
                if stop { break }
            }
        }
    }

    /// Writes the last row and stops.
    public func stop() {
        guard running else { return }
        running = false
        lock.withLock { stopping = true }
        wakeUp.signal()
        thread?.join()
        try? handle?.close()
        handle = nil
    }

    /// Brings the Prometheus registry up to date (before each scrape).
    public func refreshRegistry() {
        let now = sample()
        lock.withLock { update(now) }
    }

    private func openCSV(_ path: String) {
        let manager = FileManager.default
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty { try? manager.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        let isNew = !manager.fileExists(atPath: path) || ((try? manager.attributesOfItem(atPath: path)[.size] as? Int) ?? 0) == 0
        if isNew { _ = manager.createFile(atPath: path, contents: nil) }
        guard let handle = FileHandle(forWritingAtPath: path) else {
            logger.warning("metrics CSV cannot be written; continuing without it", metadata: ["path": "\(path)"])
            return
        }
        handle.seekToEndOfFile()
        self.handle = handle
        if isNew { write(Self.csvColumns.joined(separator: ",") + "\n") }
    }

    private func write(_ text: String) {
        guard let handle else { return }
        do {
            try handle.write(contentsOf: Data(text.utf8))
        } catch {
            logger.warning("metrics CSV write failed; CSV stopped", metadata: ["error": "\(error)"])
            self.handle = nil
        }
    }

    private func report(final: Bool) {
        let now = sample()
        let clock = Clock.wallNanoseconds()
        if let store, storing, final || clock >= sampleDue {
            sampleDue = clock + UInt64(Self.sampleSeconds * 1e9)
            let row = now.stored
            if final || lastStored.map({ !row.sameFigures(as: $0) }) ?? true {
                do {
                    try store.writeSample(row, runID: runID)
                    lastStored = row
                } catch {
                    logger.warning("samples not stored; the report will have no time series", metadata: ["error": "\(error)"])
                    storing = false
                }
            }
        }
        // A CSV row each interval (and the last one at the end).
        guard final || clock >= rowDue else { return }
        rowDue += UInt64(interval * 1e9)
        if rowDue <= clock { rowDue = clock + UInt64(interval * 1e9) }  // behind: no burst of rows
        lock.withLock {
            update(now)
            if handle != nil { write(Self.row(now, previous: previous, runID: runID)) }
            previous = now
        }
    }

    /// One CSV row: counts of the interval since `previous`, ratios over it.
    static func row(_ now: MetricsSample, previous: MetricsSample?, runID: Int64) -> String {
        let c = now.accounting.counters, p = previous?.accounting.counters ?? LedgerCounters()
        let h = now.accounting.histograms, ph = previous?.accounting.histograms
        let accesses = c.accesses - p.accesses
        let misses = c.coldAccesses - p.coldAccesses
        let hits = accesses - misses
        func delta(_ fate: PrefetchFate) -> Int { c.count(fate) - p.count(fate) }
        let decided = PrefetchFate.allCases.reduce(0) { $0 + delta($1) }
        let accuracy = decided == 0 ? 0 : Double(delta(.useful)) / Double(decided)
        // Mean prefetch latency of the interval, from the histograms' counts and means.
        let count = Double(h.prefetchLatency.count) - Double(ph?.prefetchLatency.count ?? 0)
        let sum = h.prefetchLatency.mean * Double(h.prefetchLatency.count) - (ph.map { $0.prefetchLatency.mean * Double($0.prefetchLatency.count) } ?? 0)
        let latencyMS = count > 0 ? sum / count / 1e6 : 0
        let seconds = previous.map { Double(now.wallNanoseconds &- $0.wallNanoseconds) / 1e9 } ?? 0
        let timestamp = Double(now.wallNanoseconds) / 1e9
        let fields: [String] = [
            Format.fixed(timestamp, 3), "\(hits)", "\(misses)", Format.fixed(accuracy, 4), Format.fixed(latencyMS, 3),
            "\(runID)", Format.fixed(seconds, 3), "\(accesses)",
            Format.fixed(accesses == 0 ? 0 : Double(hits) / Double(accesses), 4),
            Format.fixed(accesses == 0 ? 0 : Double(c.coveredAccesses - p.coveredAccesses) / Double(accesses), 4),
            Format.fixed(Double(c.stallNanoseconds - p.stallNanoseconds) / 1e6, 3),
            "\(c.issued - p.issued)", "\(delta(.useful))", "\(delta(.late))", "\(delta(.wasted))", "\(delta(.skipped))", "\(delta(.failed))",
            "\(c.bytesLoaded - p.bytesLoaded)", "\(now.outstandingBytes)", "\(now.budgetBytes)",
            Format.fixed(Double(h.prediction.percentile(99)) / 1e3, 2),
            Format.fixed(Double(h.prefetchLatency.percentile(99)) / 1e6, 3),
            Format.fixed(Double(h.leadTime.percentile(50)) / 1e6, 3),
            "\(now.predictions - (previous?.predictions ?? 0))", "\(now.events - (previous?.events ?? 0))",
            "\(now.eventsDropped - (previous?.eventsDropped ?? 0))",
        ]
        return fields.joined(separator: ",") + "\n"
    }

    /// Prometheus counters only go up: they are advanced by what changed since the last update.
    private struct PublishedCounters {
        var accesses = 0, cold = 0, covered = 0, issued = 0, events = 0, dropped = 0, predictions = 0
        var stall: UInt64 = 0, bytes: UInt64 = 0
        var fates: [PrefetchFate: Int] = [:]
    }

    private func update(_ now: MetricsSample) {
        let c = now.accounting.counters
        func advance(_ counter: Counter, _ value: Int, _ last: inout Int) {
            if value > last { counter.increment(by: Int64(value - last)) }
            last = max(last, value)
        }
        advance(gauges.accesses, c.accesses, &published.accesses)
        advance(gauges.coldAccesses, c.coldAccesses, &published.cold)
        advance(gauges.coveredAccesses, c.coveredAccesses, &published.covered)
        advance(gauges.issued, c.issued, &published.issued)
        advance(gauges.events, now.events, &published.events)
        advance(gauges.dropped, now.eventsDropped, &published.dropped)
        advance(gauges.predictions, now.predictions, &published.predictions)
        if c.stallNanoseconds > published.stall {
            gauges.stall.increment(by: Double(c.stallNanoseconds - published.stall) / 1e9)
            published.stall = c.stallNanoseconds
        }
        if c.bytesLoaded > published.bytes {
            gauges.bytesLoaded.increment(by: Int64(c.bytesLoaded - published.bytes))
            published.bytes = c.bytesLoaded
        }
        for fate in PrefetchFate.allCases {
            var last = published.fates[fate] ?? 0
            advance(gauges.fates[fate]!, c.count(fate), &last)
            published.fates[fate] = last
        }
        gauges.outstanding.set(Double(now.outstandingBytes))
        gauges.budget.set(Double(now.budgetBytes))
        gauges.accuracy.set(now.accounting.accuracy)
        gauges.coverage.set(now.accounting.coverage)
        let h = now.accounting.histograms
        for (quantile, gauge) in gauges.prediction { gauge.set(Double(h.prediction.percentile(quantile * 100)) / 1e9) }
        for (quantile, gauge) in gauges.prefetchLatency { gauge.set(Double(h.prefetchLatency.percentile(quantile * 100)) / 1e9) }
        for (quantile, gauge) in gauges.leadTime { gauge.set(Double(h.leadTime.percentile(quantile * 100)) / 1e9) }
    }

    private struct Gauges {
        let accesses, coldAccesses, coveredAccesses, issued, events, dropped, predictions, stall, bytesLoaded: Counter
        let fates: [PrefetchFate: Counter]
        let outstanding, budget, accuracy, coverage: Gauge
        let prediction, prefetchLatency, leadTime: [(Double, Gauge)]

        init(_ registry: PrometheusCollectorRegistry) {
            func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
                MetricNameDescriptor(namespace: "gofetch", metricName: metric, unitName: unit, helpText: help)
            }
            accesses = registry.makeCounter(descriptor: name("accesses", "total", "Reads and mmaps of traced files by the job."))
            coldAccesses = registry.makeCounter(descriptor: name("cold_accesses", "total", "Accesses that missed the page cache (by their measured time)."))
            coveredAccesses = registry.makeCounter(descriptor: name("covered_accesses", "total", "Warm accesses of bytes gofetch had loaded."))
            issued = registry.makeCounter(descriptor: name("prefetches_issued", "total", "Prefetch requests handed to the executor."))
            events = registry.makeCounter(descriptor: name("events", "total", "Events ingested."))
            dropped = registry.makeCounter(descriptor: name("events_dropped", "total", "Events dropped by clients, the store queue or the engine inbox."))
            predictions = registry.makeCounter(descriptor: name("predictions", "total", "Predictions made."))
            stall = registry.makeCounter(descriptor: name("stall_seconds", "total", "Time the job spent in cold reads."))
            bytesLoaded = registry.makeCounter(descriptor: name("prefetched_bytes", "total", "Bytes loaded into the page cache by prefetching."))
            let fateName = name("prefetch_fates", "total", "Prefetches by fate: useful, late, wasted, skipped, failed.")
            var fates: [PrefetchFate: Counter] = [:]
            for fate in PrefetchFate.allCases {
                fates[fate] = registry.makeCounter(descriptor: fateName, labels: [("fate", fate.rawValue)])
            }
            self.fates = fates
            outstanding = registry.makeGauge(descriptor: name("outstanding", "bytes", "Prefetched bytes the job has not read yet."))
            budget = registry.makeGauge(descriptor: name("budget", "bytes", "Memory budget in force (config, cgroup room, eviction feedback)."))
            accuracy = registry.makeGauge(descriptor: name("accuracy", "ratio", "Useful prefetches / issued prefetches."))
            coverage = registry.makeGauge(descriptor: name("coverage", "ratio", "Accesses served warm thanks to gofetch / all accesses."))
            func quantiles(_ metric: String, _ help: String) -> [(Double, Gauge)] {
                let descriptor = name(metric, "seconds", help)
                return [0.5, 0.9, 0.99].map { ($0, registry.makeGauge(descriptor: descriptor, labels: [("quantile", "\($0)")])) }
            }
            prediction = quantiles("prediction_latency", "Predictors' time per event (HdrHistogram quantiles).")
            prefetchLatency = quantiles("prefetch_latency", "Executor start to pages loaded (HdrHistogram quantiles).")
            leadTime = quantiles("lead_time", "Prefetch completed to the job's read, useful prefetches (HdrHistogram quantiles).")
        }
    }
}
