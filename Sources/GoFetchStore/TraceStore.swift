import CGoFetchSQLite
import Foundation
import GRDB
import GRDBSQLite
import Glibc
import GoFetchConfig
import GoFetchEvents
import GoFetchSystem
import SystemPackage

/// Why the trace store could not do what was asked.
public struct TraceStoreError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var problem: String

    public var description: String { "trace store \(path): \(problem)" }

    public init(path: String, problem: String) {
        self.path = path
        self.problem = problem
    }
}

/// The SQLite trace store (GRDB, WAL): files, events, runs, and the seed's `traces` view.
public final class TraceStore: Sendable {
    public let path: String
    let database: any DatabaseWriter
    /// Held for the life of a writing store: file ids are allocated in memory, so two
    /// writing processes on one store would hand out the same ids.
    private let lock: FileDescriptor?
    /// Whether the store keeps each run's id range (version 3); an older one, opened
    /// read-only, is queried by its index on run_id.
    let runSpans: Bool

    /// Opens (and creates or migrates) the store.
    /// - Parameters:
    ///   - path: the SQLite file.
    ///   - readOnly: open for queries only; the file must exist.
    public init(path: String, readOnly: Bool = false) throws(TraceStoreError) {
        _ = Self.multiThreaded
        self.path = path
        var configuration = GRDB.Configuration()
        configuration.readonly = readOnly
        configuration.busyMode = .timeout(5)
        // The writer inserts a file's row before any event that names it, in the
        // same transaction; checking that again per event halves the insert rate.
        configuration.foreignKeysEnabled = false
        configuration.prepareDatabase { db in
            if !readOnly {
                // WAL with synchronous=NORMAL: a committed transaction survives the
                // process being killed; only a power loss can take the last ones.
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
            }
        }
        do {
            if readOnly {
                guard FileManager.default.fileExists(atPath: path) else {
                    throw TraceStoreError(path: path, problem: "no such file (run `gofetch trace` first, or pass --db)")
                }
                let queue = try DatabaseQueue(path: path, configuration: configuration)
                database = queue
                runSpans = try queue.read { try $0.tableExists("run_spans") }
                lock = nil
            } else {
                let directory = (path as NSString).deletingLastPathComponent
                if !directory.isEmpty {
                    // Only the user reads a new folder: the store holds every path and timing.
                    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                            attributes: [.posixPermissions: 0o700])
                }
                let lockFile = try FileDescriptor.open(path + ".lock", .readOnly, options: [.create, .closeOnExec], permissions: [.ownerReadWrite])
                guard flock(lockFile.rawValue, LOCK_EX | LOCK_NB) == 0 else {
                    try? lockFile.close()
                    throw TraceStoreError(path: path, problem: "another gofetch process is writing to this store; use another --db")
                }
                lock = lockFile
                try Self.makePrivate(path)
                let pool = try DatabasePool(path: path, configuration: configuration)
                try StoreSchema.migrator().migrate(pool)
                database = pool
                runSpans = true
            }
        } catch let error as TraceStoreError {
            throw error
        } catch {
            throw TraceStoreError(path: path, problem: "\(error)")
        }
    }

    /// Whether SQLite runs without a mutex per call (set before its first connection):
    /// GRDB hands each connection to one thread at a time, and the 17 calls an event's
    /// insert makes each took and released the connection's mutex, a fifth of the insert.
    static let multiThreaded: Bool = gofetch_sqlite_use_multithread() == SQLITE_OK

    deinit {
        if let lock { try? lock.close() }
    }

    /// The store holds every user's paths, uids and timings: the database is created
    /// readable by its owner only (SQLite gives its `-wal` and `-shm` the database's
    /// mode), and an older store, and its journals, made so when they are ours.
    static func makePrivate(_ path: String) throws {
        let file = try FileDescriptor.open(path, .readWrite, options: [.create, .closeOnExec], permissions: [.ownerReadWrite])
        try file.close()
        for name in [path, path + "-wal", path + "-shm"] where FileManager.default.fileExists(atPath: name) {
            try? FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: name)
        }
    }

    /// Starts a run (one `trace`, `run` or daemon session) and returns its id.
    public func beginRun(command: String, source: String) throws(TraceStoreError) -> Int64 {
        try perform { db in
            try db.execute(
                sql: "INSERT INTO runs (started_ns, command, source) VALUES (?, ?, ?)",
                arguments: [Int64(bitPattern: Clock.wallNanoseconds()), command, source])
            return db.lastInsertedRowID
        }
    }

    public func endRun(_ id: Int64) throws(TraceStoreError) {
        try perform { db in
            try db.execute(sql: "UPDATE runs SET ended_ns = ? WHERE id = ?", arguments: [Int64(bitPattern: Clock.wallNanoseconds()), id])
        }
    }

    /// Every known file, to seed ingest's catalog (at most `limit`).
    public func files(limit: Int) throws(TraceStoreError) -> [FileRecord] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT \(Self.fileColumns) FROM files ORDER BY id LIMIT ?", arguments: [limit]).map(Self.fileRecord)
        }
    }

    static let fileColumns = "id, path, dev, ino, size, first_seen_ns"

    /// A row of ``fileColumns``.
    static func fileRecord(_ row: Row) -> FileRecord {
        FileRecord(
            id: row[0], path: row[1], device: UInt64(bitPattern: row[2]), inode: UInt64(bitPattern: row[3]),
            size: UInt64(bitPattern: row[4]), firstSeenWallNanoseconds: row[5])
    }

    /// Inserts the files, or updates a known id's inode and size (a replaced file keeps its id).
    static func upsert(_ files: [FileRecord], _ db: Database) throws {
        guard !files.isEmpty else { return }
        let upsert = try db.cachedStatement(sql: """
            INSERT INTO files (\(fileColumns)) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT(id) DO UPDATE SET dev = excluded.dev, ino = excluded.ino, size = excluded.size
            """)
        for file in files {
            try upsert.execute(arguments: [
                file.id, file.path, Int64(bitPattern: file.device), Int64(bitPattern: file.inode),
                Int64(bitPattern: file.size), file.firstSeenWallNanoseconds,
            ])
        }
    }

    /// The largest file id in the store (0 when it has none): new files are numbered
    /// after it, also when the catalog loaded only a part of the files.
    public func maxFileID() throws(TraceStoreError) -> FileID {
        try read { db in try FileID.fetchOne(db, sql: "SELECT MAX(id) FROM files") ?? 0 }
    }

    /// Writes files and events in one transaction.
    public func write(files: [FileRecord], events: ArraySlice<TraceEvent>, runID: Int64) throws(TraceStoreError) {
        try perform { db in
            try Self.upsert(files, db)
            // Rows go in 20 to a statement (the last few one by one): SQLite's work per
            // statement (its program's set-up, the cursor) is paid once per 20 rows, which
            // takes the insert from 1.5 to 0.8 µs a row (bench: libsqlite3, 200k rows).
            let many = try db.cachedStatement(sql: Self.insertEvents(rows: Self.rowsPerInsert)).sqliteStatement
            let one = try db.cachedStatement(sql: Self.insertEvents(rows: 1)).sqliteStatement
            var firstID: Int64 = 0
            var index = events.startIndex
            while index < events.endIndex {
                let rows = events.endIndex - index >= Self.rowsPerInsert ? Self.rowsPerInsert : 1
                let handle = rows == 1 ? one : many
                // The hot path binds with SQLite's C API on GRDB's prepared statement:
                // building a StatementArguments of 15 existentials per row costs more
                // than the insert itself (measured: 90 k/s that way, see bench/ingest).
                for row in 0..<rows {
                    let event = events[index + row]
                    let base = Int32(row * 15)
                    sqlite3_bind_int64(handle, base + 1, runID)
                    sqlite3_bind_int64(handle, base + 2, event.wallNanoseconds)
                    sqlite3_bind_int64(handle, base + 3, Int64(bitPattern: event.monotonicNanoseconds))
                    sqlite3_bind_int64(handle, base + 4, Int64(event.pid))
                    sqlite3_bind_int64(handle, base + 5, Int64(event.tid))
                    sqlite3_bind_int64(handle, base + 6, Int64(event.uid))
                    if let worker = event.workerID { sqlite3_bind_int64(handle, base + 7, Int64(worker)) } else { sqlite3_bind_null(handle, base + 7) }
                    if let epoch = event.epoch { sqlite3_bind_int64(handle, base + 8, Int64(epoch)) } else { sqlite3_bind_null(handle, base + 8) }
                    sqlite3_bind_int64(handle, base + 9, event.fileID)
                    sqlite3_bind_int64(handle, base + 10, Int64(event.kind.rawValue))
                    sqlite3_bind_int64(handle, base + 11, Int64(bitPattern: event.offset))
                    sqlite3_bind_int64(handle, base + 12, Int64(bitPattern: event.length))
                    sqlite3_bind_int64(handle, base + 13, Int64(event.durationNanoseconds))
                    sqlite3_bind_int64(handle, base + 14, Int64(event.source.rawValue))
                    sqlite3_bind_int64(handle, base + 15, Int64(event.flags.rawValue))
                }
                let code = sqlite3_step(handle)
                sqlite3_reset(handle)
                guard code == SQLITE_DONE else {
                    throw DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(db.sqliteConnection)))
                }
                // A statement's rows take consecutive ids; the last one's is reported.
                if firstID == 0 { firstID = db.lastInsertedRowID - Int64(rows) + 1 }
                index += rows
            }
            if firstID != 0 {
                try db.cachedStatement(sql: StoreSchema.extendRunSpan).execute(arguments: [runID, firstID, db.lastInsertedRowID])
            }
        }
    }

    static let rowsPerInsert = 20

    /// `INSERT INTO events … VALUES (…), (…)` with `rows` rows of 15 parameters.
    static func insertEvents(rows: Int) -> String {
        "INSERT INTO events (run_id, time_ns, mono_ns, pid, tid, uid, worker_id, epoch, file_id, kind, offset, length, duration_ns, source, flags) VALUES "
            + Array(repeating: "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", count: rows).joined(separator: ", ")
    }

    /// The condition that selects `runID`'s events (see ``StoreSchema/runCondition(_:table:spans:)``).
    func runCondition(_ runID: Int64, table: String = "events") -> String {
        runCondition(run: "\(runID)", table: table)
    }

    /// The same for a run id given as SQL (a column of an outer query).
    func runCondition(run: String, table: String) -> String {
        StoreSchema.runCondition(run, table: table, spans: runSpans)
    }

    /// Deletes events beyond the retention limits; returns how many went.
    /// - Parameters:
    ///   - maxAgeDays: events older than this go; 0 keeps all.
    ///   - maxEvents: only the newest this many stay; 0 keeps all.
    @discardableResult
    public func applyRetention(maxAgeDays: Double, maxEvents: Int) throws(TraceStoreError) -> Int {
        try perform { db in
            var deleted = 0
            if maxAgeDays > 0 {
                let cutoff = Int64(bitPattern: Clock.wallNanoseconds()) - Int64(maxAgeDays * 86_400 * 1e9)
                // Events are stored in time order, so the cut is an id: SQLite finds the
                // first newer row by scanning in rowid order and deletes a rowid range.
                // The newest event stays, whatever its age: SQLite numbers a new row after
                // the largest id left, and ids must keep rising (the cluster copier resumes
                // after the last id it copied).
                try db.execute(
                    sql: "DELETE FROM events WHERE id < COALESCE((SELECT MIN(id) FROM events WHERE time_ns >= ?), (SELECT MAX(id) FROM events))",
                    arguments: [cutoff])
                deleted += db.changesCount
                // Samples go with the events of their time (not counted: they are not events).
                try db.execute(sql: "DELETE FROM samples WHERE time_ns < ?", arguments: [cutoff])
            }
            if maxEvents > 0 {
                try db.execute(
                    sql: "DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?", arguments: [maxEvents])
                deleted += db.changesCount
            }
            if deleted > 0 {
                try deleteSamplesBeforeOldestEvent(db)
                try db.execute(sql: "DELETE FROM run_spans WHERE last_event_id < COALESCE((SELECT MIN(id) FROM events), 9223372036854775807)")
            }
            return deleted
        }
    }

    /// `PRAGMA integrity_check`: "ok" or the problems found.
    public func integrityCheck() throws(TraceStoreError) -> String {
        try read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check").joined(separator: "; ") }
    }

    func perform<T>(_ body: (Database) throws -> T) throws(TraceStoreError) -> T {
        do {
            return try database.write(body)
        } catch {
            throw TraceStoreError(path: path, problem: "\(error)")
        }
    }

    func read<T>(_ body: (Database) throws -> T) throws(TraceStoreError) -> T {
        do {
            return try database.read(body)
        } catch {
            throw TraceStoreError(path: path, problem: "\(error)")
        }
    }
}
