import Foundation
import GoFetchConfig
import GoFetchEvents
import GoFetchSystem
import Logging
import PostgresNIO
import Synchronization

/// Counters of the copier to the cluster's store.
public final class ClusterStatistics: Sendable {
    public let copiedEvents = Atomic<Int>(0)
    public let copiedFiles = Atomic<Int>(0)
    /// Transactions committed on the cluster's store.
    public let transactions = Atomic<Int>(0)
    /// Connections opened (more than one: the server went away and came back).
    public let connections = Atomic<Int>(0)
    /// Failed connection attempts and transactions (each rolled back, retried later).
    public let failures = Atomic<Int>(0)
    /// Runs whose events, samples and summary are all in the cluster's store.
    public let runsCompleted = Atomic<Int>(0)
    /// Committed events not yet copied when the daemon stopped: they stay in this
    /// machine's store, and the next daemon on it copies them first.
    public let pendingEvents = Atomic<Int>(0)
    public let lastError = Mutex<String?>(nil)

    public init() {}
}

/// Copies what the daemon committed to its own store into the cluster's store.
///
/// The embedded store is the buffer: ingest and the store writer never wait on the
/// network, the events of a run reach PostgreSQL in transactions of up to
/// ``batchRows`` rows, and while the server is slow or gone they wait on disk
/// (bounded by the store's retention), not in memory. A transaction copies rows and
/// moves the run's `copied_event_id` past them together, so after a crash of either
/// side the copy resumes where the server says it stopped. Runs the daemon's store
/// holds from before (a daemon killed before it copied them) are copied first.
public final class ClusterCopier: @unchecked Sendable {
    private let address: ClusterStoreAddress
    private let store: TraceStore
    private let node: String
    private let job: String
    private let currentRun: Int64
    private let statistics: ClusterStatistics
    private let logger: Logger

    static let batchRows = 20_000
    /// Time between passes while the server answers; after a failure, the wait
    /// doubles from 0.5 s up to ``maxBackoff``.
    static let passInterval: DispatchTimeInterval = .milliseconds(250)
    static let maxBackoffNanoseconds: UInt64 = 10_000_000_000

    private struct Run {
        var local: StoredRun
        var remoteID: Int64 = 0
        var copied: Int64 = 0
    }

    // Owned by the copier's thread (or the caller of finish() once it is joined).
    private var connection: ClusterConnection?
    private var storeID = ""
    private var runs: [Run] = []
    private var copiedFiles = Set<Int64>()
    private var retryAt: UInt64 = 0
    /// The server's database is not one to write to: no more tries this run.
    private var refused = false
    private var backoff: UInt64 = 500_000_000

    private let stopping = Atomic<Bool>(false)
    private let wakeUp = DispatchSemaphore(value: 0)
    private var thread: JoinableThread?

    public init(address: ClusterStoreAddress, store: TraceStore, node: String, job: String, currentRun: Int64,
                statistics: ClusterStatistics, logger: Logger) {
        self.address = address
        self.store = store
        self.node = node
        self.job = job
        self.currentRun = currentRun
        self.statistics = statistics
        self.logger = logger
    }

    public func start() throws(TraceStoreError) {
        storeID = try store.storeID()
        // The running run first: a short job's own events should not wait behind history.
        let all = try store.runs()
        runs = all.filter { $0.id == currentRun }.map { Run(local: $0) } + all.filter { $0.id != currentRun }.map { Run(local: $0) }
        thread = JoinableThread(name: "gofetch-cluster") { [self] in
            while !stopping.load(ordering: .acquiring) {
                _ = wakeUp.wait(timeout: .now() + Self.passInterval)
                if stopping.load(ordering: .acquiring) { break }
                pass(final: false, deadline: .max)
            }
        }
    }

    /// After the run ended in the daemon's store (its writer stopped, its summary
    /// saved): stops the thread and copies the rest, trying for up to `seconds`.
    public func finish(seconds: Double) {
        stopping.store(true, ordering: .releasing)
        wakeUp.signal()
        thread?.join()
        thread = nil
        let deadline = Clock.monotonicNanoseconds() &+ UInt64(seconds * 1e9)
        retryAt = 0
        while !runs.isEmpty && !refused && Clock.monotonicNanoseconds() < deadline {
            pass(final: true, deadline: deadline)
            if !runs.isEmpty && connection == nil {
                Thread.sleep(forTimeInterval: min(0.5, Double(deadline &- Clock.monotonicNanoseconds()) / 1e9))
                retryAt = 0
            }
        }
        var pending = 0
        for run in runs { pending += (try? store.eventCount(runID: run.local.id, after: run.copied)) ?? 0 }
        statistics.pendingEvents.store(pending, ordering: .relaxed)
        if pending > 0 {
            logger.warning("events not copied to the cluster's store; the next daemon on this store copies them",
                           metadata: ["events": "\(pending)", "cluster": "\(address)"])
        }
        connection?.close()
        connection = nil
    }

    /// Copies what is there to copy; on a failure, closes the connection and waits before the next try.
    private func pass(final: Bool, deadline: UInt64) {
        guard !refused, Clock.monotonicNanoseconds() >= retryAt else { return }
        do throws(ClusterStoreError) {
            let connection = try connected()
            var index = 0
            while index < runs.count {
                // The running run is complete only in the final pass (its summary is saved then).
                let open = runs[index].local.id == currentRun && !final
                if try copy(&runs[index], on: connection, complete: !open, deadline: deadline) {
                    runs.remove(at: index)
                    statistics.runsCompleted.add(1)
                } else {
                    index += 1
                }
                if stopping.load(ordering: .acquiring) && !final || Clock.monotonicNanoseconds() >= deadline { return }
            }
            backoff = 500_000_000
        } catch {
            statistics.failures.add(1)
            let message = error.description
            let repeated = statistics.lastError.withLock { last in
                defer { last = message }
                return last == message
            }
            if !repeated {
                logger.warning("cluster store unavailable; events wait in this machine's store", metadata: ["error": "\(message)"])
            }
            connection?.close()
            connection = nil
            refused = error.permanent
            retryAt = Clock.monotonicNanoseconds() &+ backoff
            backoff = min(backoff * 2, Self.maxBackoffNanoseconds)
        }
    }

    private func connected() throws(ClusterStoreError) -> ClusterConnection {
        if let connection { return connection }
        let connection = try ClusterConnection.connect(address, logger: logger)
        do throws(ClusterStoreError) {
            try ClusterSchema.ensure(on: connection)
            // The server may be another (a restored backup, a replica): what it holds is
            // read again, files included.
            copiedFiles.removeAll()
            // Each run's row, and where its copy stands (a new row: 0). Runs complete
            // there (another daemon on this store finished them) are left alone.
            var index = 0
            while index < runs.count {
                let local = runs[index].local
                let found = try connection.rows("""
                    INSERT INTO runs (store_id, local_id, node, job, started_ns, ended_ns, command, source)
                    VALUES (\(storeID), \(local.id), \(node), \(job), \(local.startedNanoseconds), \(local.endedNanoseconds), \(local.command), \(local.source))
                    ON CONFLICT (store_id, local_id) DO UPDATE SET local_id = EXCLUDED.local_id
                    RETURNING id, copied_event_id, completed
                    """) { row in try row.decode((Int64, Int64, Bool).self) }
                guard let (remote, copied, completed) = found.first else {
                    throw ClusterStoreError(address: address.description, problem: "no row returned for run \(local.id)")
                }
                if completed && local.id != currentRun {
                    runs.remove(at: index)
                    continue
                }
                runs[index].remoteID = remote
                runs[index].copied = copied
                index += 1
            }
        } catch {
            connection.close()
            throw error
        }
        statistics.connections.add(1)
        if statistics.connections.load(ordering: .relaxed) > 1 {
            logger.notice("cluster store reachable again", metadata: ["cluster": "\(address)"])
        }
        self.connection = connection
        return connection
    }

    /// Copies the run's events after its `copied` mark, a transaction per batch; then,
    /// if `complete`, its samples, summary and end. Returns whether the run is done.
    private func copy(_ run: inout Run, on connection: ClusterConnection, complete: Bool, deadline: UInt64) throws(ClusterStoreError) -> Bool {
        while true {
            let rows = try local { () throws(TraceStoreError) in try store.eventRows(runID: run.local.id, after: run.copied, limit: Self.batchRows) }
            guard let last = rows.last else { break }
            let newFiles = Array(Set(rows.lazy.map(\.fileID)).subtracting(copiedFiles))
            let files = try local { () throws(TraceStoreError) in try store.fileRecords(ids: newFiles) }
            let remoteID = run.remoteID
            try connection.transaction { () throws(ClusterStoreError) in
                if !files.isEmpty { try connection.execute(upsertFiles(files)) }
                try connection.execute(Self.insertEvents(rows, run: remoteID))
                try connection.execute("UPDATE runs SET copied_event_id = \(last.id) WHERE id = \(remoteID)")
            }
            copiedFiles.formUnion(files.map(\.id))
            run.copied = last.id
            statistics.copiedEvents.add(rows.count)
            statistics.copiedFiles.add(files.count)
            statistics.transactions.add(1)
            if rows.count < Self.batchRows { break }
            if stopping.load(ordering: .acquiring) && !complete || Clock.monotonicNanoseconds() >= deadline { return false }
        }
        guard complete else { return false }
        let id = run.local.id
        let (ended, samples, summary) = try local { () throws(TraceStoreError) in
            (try store.runs().first { $0.id == id }?.endedNanoseconds, try store.samples(runID: id), try store.result(runID: id))
        }
        let remoteID = run.remoteID
        try connection.transaction { () throws(ClusterStoreError) in
            // Once per run: `completed` keeps later daemons from redoing it.
            try connection.execute("DELETE FROM samples WHERE run_id = \(remoteID)")
            if !samples.isEmpty { try connection.execute(Self.insertSamples(samples, run: remoteID)) }
            try connection.execute("""
                UPDATE runs SET ended_ns = \(ended), summary = \(summary), completed = true WHERE id = \(remoteID)
                """)
        }
        statistics.transactions.add(1)
        return true
    }

    /// A read of this machine's store, its failure told as the copy's.
    private func local<T>(_ read: () throws(TraceStoreError) -> T) throws(ClusterStoreError) -> T {
        do {
            return try read()
        } catch {
            throw ClusterStoreError(address: address.description, problem: "reading this machine's store: \(error)")
        }
    }

    private func upsertFiles(_ files: [FileRecord]) -> PostgresQuery {
        let ids = files.map(\.id), paths = files.map(\.path)
        let devices = files.map { Int64(bitPattern: $0.device) }, inodes = files.map { Int64(bitPattern: $0.inode) }
        let sizes = files.map { Int64(bitPattern: $0.size) }, seen = files.map(\.firstSeenWallNanoseconds)
        return """
            INSERT INTO files (store_id, id, path, dev, ino, size, first_seen_ns)
            SELECT \(storeID), u.* FROM unnest(\(ids)::int8[], \(paths)::text[], \(devices)::int8[], \(inodes)::int8[],
                                              \(sizes)::int8[], \(seen)::int8[]) AS u
            ON CONFLICT (store_id, id) DO UPDATE SET path = EXCLUDED.path, dev = EXCLUDED.dev, ino = EXCLUDED.ino, size = EXCLUDED.size
            """
    }

    /// One INSERT of the rows, each column bound as one array (`unnest`): 16 parameters
    /// whatever the batch's size. (COPY in text format was no faster: 107-116 k against
    /// 111 k events/s with 4 daemons, bench/cluster-store; and a connection the server
    /// closed mid-COPY left PostgresNIO's writer waiting until the call timed out.)
    static func insertEvents(_ rows: [EventRow], run: Int64) -> PostgresQuery {
        func column(_ value: (EventRow) -> Int64) -> [Int64] { rows.map(value) }
        let runs = [Int64](repeating: run, count: rows.count)
        let workers = rows.map { $0.workerID ?? Int64.min }, epochs = rows.map { $0.epoch ?? Int64.min }
        return """
            INSERT INTO events (run_id, local_id, time_ns, mono_ns, pid, tid, uid, worker_id, epoch, file_id, kind, "offset", length,
                                duration_ns, source, flags)
            SELECT r, i, t, m, p, th, ui, NULLIF(w, -9223372036854775808), NULLIF(e, -9223372036854775808), f, k, o, l, d, s, fl
            FROM unnest(\(runs)::int8[], \(column(\.id))::int8[], \(column(\.timeNanoseconds))::int8[],
                        \(column(\.monotonicNanoseconds))::int8[], \(column(\.pid))::int8[], \(column(\.tid))::int8[],
                        \(column(\.uid))::int8[], \(workers)::int8[], \(epochs)::int8[], \(column(\.fileID))::int8[],
                        \(column(\.kind))::int8[], \(column(\.offset))::int8[], \(column(\.length))::int8[],
                        \(column(\.durationNanoseconds))::int8[], \(column(\.source))::int8[], \(column(\.flags))::int8[])
                 AS rows (r, i, t, m, p, th, ui, w, e, f, k, o, l, d, s, fl)
            """
    }

    /// One INSERT of the samples, a column per array (as ``insertEvents(_:run:)``).
    static func insertSamples(_ samples: [StoredSample], run: Int64) -> PostgresQuery {
        func column(_ value: (StoredSample) -> Int64) -> [Int64] { samples.map(value) }
        let runs = [Int64](repeating: run, count: samples.count)
        return """
            INSERT INTO samples (run_id, time_ns, epoch, accesses, cold_accesses, covered_accesses, stall_ns, issued, useful, late,
                                 wasted, skipped, failed, bytes_prefetched, outstanding_bytes, budget_bytes, events, events_dropped)
            SELECT * FROM unnest(\(runs)::int8[], \(column(\.wallNanoseconds))::int8[], \(column { Int64($0.epoch) })::int8[],
                                 \(column { Int64($0.accesses) })::int8[], \(column { Int64($0.coldAccesses) })::int8[],
                                 \(column { Int64($0.coveredAccesses) })::int8[], \(column(\.stallNanoseconds))::int8[],
                                 \(column { Int64($0.issued) })::int8[], \(column { Int64($0.useful) })::int8[],
                                 \(column { Int64($0.late) })::int8[], \(column { Int64($0.wasted) })::int8[],
                                 \(column { Int64($0.skipped) })::int8[], \(column { Int64($0.failed) })::int8[],
                                 \(column(\.bytesPrefetched))::int8[], \(column { Int64($0.outstandingBytes) })::int8[],
                                 \(column { Int64($0.budgetBytes) })::int8[], \(column { Int64($0.events) })::int8[],
                                 \(column { Int64($0.eventsDropped) })::int8[])
            """
    }
}
