import GoFetchEvents
import GRDB

/// The prefetch engine's cumulative figures at one moment: a row of `samples`.
public struct StoredSample: Sendable, Equatable {
    public var wallNanoseconds: Int64
    /// Epoch boundaries the engine had seen (0 in the first epoch).
    public var epoch: Int
    public var accesses: Int
    public var coldAccesses: Int
    public var coveredAccesses: Int
    public var stallNanoseconds: Int64
    public var issued: Int
    public var useful: Int
    public var late: Int
    public var wasted: Int
    public var skipped: Int
    public var failed: Int
    public var bytesPrefetched: Int64
    public var outstandingBytes: Int
    public var budgetBytes: Int
    public var events: Int
    public var eventsDropped: Int

    public init(
        wallNanoseconds: Int64, epoch: Int, accesses: Int, coldAccesses: Int, coveredAccesses: Int, stallNanoseconds: Int64,
        issued: Int, useful: Int, late: Int, wasted: Int, skipped: Int, failed: Int, bytesPrefetched: Int64,
        outstandingBytes: Int, budgetBytes: Int, events: Int, eventsDropped: Int
    ) {
        self.wallNanoseconds = wallNanoseconds
        self.epoch = epoch
        self.accesses = accesses
        self.coldAccesses = coldAccesses
        self.coveredAccesses = coveredAccesses
        self.stallNanoseconds = stallNanoseconds
        self.issued = issued
        self.useful = useful
        self.late = late
        self.wasted = wasted
        self.skipped = skipped
        self.failed = failed
        self.bytesPrefetched = bytesPrefetched
        self.outstandingBytes = outstandingBytes
        self.budgetBytes = budgetBytes
        self.events = events
        self.eventsDropped = eventsDropped
    }

    /// Whether anything but the clock differs from `other`.
    public func sameFigures(as other: StoredSample) -> Bool {
        var copy = other
        copy.wallNanoseconds = wallNanoseconds
        return copy == self
    }
}

/// A row of `runs`.
public struct StoredRun: Sendable, Equatable {
    public var id: Int64
    public var command: String
    /// `trace`, `run`, `daemon`, or `python-hook`.
    public var source: String
    public var startedNanoseconds: Int64
    public var endedNanoseconds: Int64?
}

/// A run's opens pass by pass (``TraceStore/openPasses(runID:passes:limit:maxEvents:)``).
public struct OpenPasses: Sendable, Equatable {
    /// Pass k: each file's (k+1)-th open, in the order of those opens.
    public var orders: [[FileID]]
    /// Whether these are all the run's opens: no bound cut any.
    public var whole: Bool

    public init(orders: [[FileID]], whole: Bool) {
        self.orders = orders
        self.whole = whole
    }

    /// The epochs the run read, when the passes are whole: those holding at least half
    /// as many files as the first (a file opened more often, a label list or a config
    /// opened each batch, makes thin passes of its own). `nil` when a bound cut the passes.
    public var epochs: Int? {
        guard whole, let first = orders.first?.count else { return nil }
        return orders.prefix { 2 * $0.count >= first }.count
    }
}

extension TraceStore {
    private static let sampleColumns = """
        time_ns, epoch, accesses, cold_accesses, covered_accesses, stall_ns, issued, useful, late, wasted, skipped, failed,
        bytes_prefetched, outstanding_bytes, budget_bytes, events, events_dropped
        """

    public func writeSample(_ sample: StoredSample, runID: Int64) throws(TraceStoreError) {
        try perform { db in
            try db.execute(
                sql: "INSERT INTO samples (run_id, \(Self.sampleColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                arguments: [
                    runID, sample.wallNanoseconds, sample.epoch, sample.accesses, sample.coldAccesses, sample.coveredAccesses,
                    sample.stallNanoseconds, sample.issued, sample.useful, sample.late, sample.wasted, sample.skipped, sample.failed,
                    sample.bytesPrefetched, sample.outstandingBytes, sample.budgetBytes, sample.events, sample.eventsDropped,
                ])
        }
    }

    /// The run's samples in time order.
    public func samples(runID: Int64) throws(TraceStoreError) -> [StoredSample] {
        try read { db in
            // A store made by an older version, opened read-only, has no samples.
            guard try db.tableExists("samples") else { return [] }
            return try Row.fetchAll(db, sql: "SELECT \(Self.sampleColumns) FROM samples WHERE run_id = ? ORDER BY time_ns, id", arguments: [runID]).map {
                StoredSample(
                    wallNanoseconds: $0[0], epoch: $0[1], accesses: $0[2], coldAccesses: $0[3], coveredAccesses: $0[4],
                    stallNanoseconds: $0[5], issued: $0[6], useful: $0[7], late: $0[8], wasted: $0[9], skipped: $0[10],
                    failed: $0[11], bytesPrefetched: $0[12], outstandingBytes: $0[13], budgetBytes: $0[14], events: $0[15],
                    eventsDropped: $0[16])
            }
        }
    }

    /// Keeps the run's summary (JSON), replacing an earlier one.
    public func saveResult(_ json: String, runID: Int64) throws(TraceStoreError) {
        try perform { db in
            try db.execute(sql: "INSERT OR REPLACE INTO run_results (run_id, summary) VALUES (?, ?)", arguments: [runID, json])
        }
    }

    public func result(runID: Int64) throws(TraceStoreError) -> String? {
        try read { db in
            guard try db.tableExists("run_results") else { return nil }
            return try String.fetchOne(db, sql: "SELECT summary FROM run_results WHERE run_id = ?", arguments: [runID])
        }
    }

    public func runs() throws(TraceStoreError) -> [StoredRun] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT id, command, source, started_ns, ended_ns FROM runs ORDER BY id").map {
                StoredRun(id: $0[0], command: $0[1], source: $0[2], startedNanoseconds: $0[3], endedNanoseconds: $0[4])
            }
        }
    }

    /// The last run before `runID` of the same command (and source) that found a
    /// data-set tree, and the tree's root, from its summary; `nil` when none did.
    public func lastDataSetRun(command: String, source: String, before runID: Int64) throws(TraceStoreError) -> (runID: Int64, root: String)? {
        try read { db in
            guard try db.tableExists("run_results") else { return nil }
            guard let row = try Row.fetchOne(db, sql: """
                SELECT r.id, json_extract(j.summary, '$.prefetch.treeRoot') FROM runs r JOIN run_results j ON j.run_id = r.id
                WHERE r.command = ? AND r.source = ? AND r.id < ? AND json_extract(j.summary, '$.prefetch.treeRoot') IS NOT NULL
                ORDER BY r.id DESC LIMIT 1
                """, arguments: [command, source, runID]), let root = row[1] as String? else { return nil }
            return (row[0], root)
        }
    }

    /// The files run `runID` opened, each once, in the order of its first open (by
    /// the trace's monotonic clock, which every traced process shares), at most
    /// `limit`: a job whose order repeats from run to run reads its first epoch in it.
    /// Empty when retention has deleted the run's start (the oldest events go first:
    /// what is left would be a later epoch's order) or it opened nothing. Looks at the
    /// run's first `16 × limit` events at most: the first epoch lies at its start.
    public func firstOpenOrder(runID: Int64, limit: Int) throws(TraceStoreError) -> [FileID] {
        try read { db in
            let limit = max(0, limit)
            guard let (condition, _) = try runStart(db, runID: runID, events: max(1, limit &* 16)) else { return [] }
            return try FileID.fetchAll(db, sql: """
                SELECT file_id FROM events WHERE \(condition) AND kind = \(AccessKind.open.rawValue)
                GROUP BY file_id ORDER BY MIN(mono_ns), file_id LIMIT ?
                """, arguments: [limit])
        }
    }

    /// The files run `runID` opened, pass by pass: pass k holds each file's (k+1)-th
    /// open, in the order of those opens (by the trace's monotonic clock). A job that
    /// reads its data set once an epoch, in an order that repeats from run to run (a
    /// shuffle its script seeds), read epoch k+1 in pass k. Bounded: at most `passes`
    /// passes and `limit` files in all of them together, from the run's first
    /// `maxEvents` events. Empty when retention has deleted the run's start (what is
    /// left would put a later epoch's order first) or it opened nothing.
    public func openPasses(runID: Int64, passes: Int, limit: Int, maxEvents: Int) throws(TraceStoreError) -> OpenPasses {
        try read { db in
            guard passes > 0, limit > 0, maxEvents > 0,
                  let (condition, allEvents) = try runStart(db, runID: runID, events: maxEvents) else { return OpenPasses(orders: [], whole: false) }
            var orders: [[FileID]] = []
            // One pass and one file past the bounds: whether they cut anything.
            var cut = !allEvents
            var rows = 0
            let cursor = try Row.fetchCursor(db, sql: """
                SELECT file_id, pass FROM (
                    SELECT file_id, mono_ns, ROW_NUMBER() OVER (PARTITION BY file_id ORDER BY mono_ns, id) AS pass
                    FROM events WHERE \(condition) AND kind = \(AccessKind.open.rawValue))
                WHERE pass <= ? ORDER BY pass, mono_ns, file_id LIMIT ?
                """, arguments: [passes + 1, limit + 1])
            while let row = try cursor.next() {
                let pass = Int(row[1] as Int64) - 1
                rows += 1
                guard pass < passes, rows <= limit else {
                    cut = true
                    break
                }
                while orders.count <= pass { orders.append([]) }
                orders[pass].append(row[0])
            }
            return OpenPasses(orders: orders, whole: !cut && !orders.isEmpty)
        }
    }

    /// The SQL condition for the first `events` events of run `runID` (all of them in a
    /// store without run spans), and whether those are all its events; `nil` when
    /// retention has deleted the run's start, or the run has no events.
    private func runStart(_ db: Database, runID: Int64, events: Int) throws -> (condition: String, allEvents: Bool)? {
        guard runSpans else { return (runCondition(runID), true) }
        guard let span = try Row.fetchOne(db, sql: "SELECT first_event_id, last_event_id FROM run_spans WHERE run_id = ?", arguments: [runID]),
              let first = span[0] as Int64?, let last = span[1] as Int64?,
              let oldest = try Int64.fetchOne(db, sql: "SELECT MIN(id) FROM events"), oldest <= first else { return nil }
        let end = first &+ Int64(events) &- 1
        return ("id BETWEEN \(first) AND \(min(last, end)) AND run_id = \(runID)", last <= end)
    }

    /// Wall times of the run's first and last event; `nil` without events.
    public func eventSpan(runID: Int64) throws(TraceStoreError) -> (first: Int64, last: Int64)? {
        try read { db in
            let row = try Row.fetchOne(db, sql: "SELECT MIN(time_ns), MAX(time_ns) FROM events WHERE \(runCondition(runID))")
            guard let row, let first = row[0] as Int64?, let last = row[1] as Int64? else { return nil }
            return (first, last)
        }
    }

    /// Deletes samples older than the oldest event kept (after retention deleted
    /// events); with no event left, samples stay (a run may record none).
    func deleteSamplesBeforeOldestEvent(_ db: Database) throws {
        try db.execute(sql: "DELETE FROM samples WHERE time_ns < (SELECT time_ns FROM events ORDER BY id LIMIT 1)")
    }
}
