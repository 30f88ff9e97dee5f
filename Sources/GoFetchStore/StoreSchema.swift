import GRDB

/// The trace store's schema, version 3 (`docs/store.md`).
///
/// Every statement is idempotent (`IF NOT EXISTS`) so that the Python hook, which
/// writes the same schema with the standard library's `sqlite3`, and the daemon
/// can each create the database first.
enum StoreSchema {
    static let version = 3

    static let statements = [
        """
        CREATE TABLE IF NOT EXISTS meta (
            key TEXT PRIMARY KEY NOT NULL,
            value TEXT NOT NULL
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS runs (
            id INTEGER PRIMARY KEY,
            started_ns INTEGER NOT NULL,
            ended_ns INTEGER,
            command TEXT NOT NULL,
            source TEXT NOT NULL
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS files (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            dev INTEGER NOT NULL,
            ino INTEGER NOT NULL,
            size INTEGER NOT NULL,
            first_seen_ns INTEGER NOT NULL
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS events (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            time_ns INTEGER NOT NULL,
            mono_ns INTEGER NOT NULL,
            pid INTEGER NOT NULL,
            tid INTEGER NOT NULL,
            uid INTEGER NOT NULL,
            worker_id INTEGER,
            epoch INTEGER,
            file_id INTEGER NOT NULL REFERENCES files(id),
            kind INTEGER NOT NULL,
            offset INTEGER NOT NULL,
            length INTEGER NOT NULL,
            duration_ns INTEGER NOT NULL,
            source INTEGER NOT NULL,
            flags INTEGER NOT NULL
        )
        """,
        // Version 1 indexed events by (run, time); version 3 drops it for run_spans.
        "CREATE INDEX IF NOT EXISTS events_by_run_time ON events(run_id, time_ns)",
        // The seed's columns, for anything written against the prototype's traces.
        """
        CREATE VIEW IF NOT EXISTS traces AS
        SELECT e.time_ns / 1e9 AS timestamp,
               e.pid AS pid,
               e.worker_id AS worker_id,
               f.path AS file_path,
               e.offset AS offset,
               e.length AS length,
               CASE e.kind WHEN 1 THEN 'open' WHEN 2 THEN 'read' WHEN 3 THEN 'mmap' WHEN 4 THEN 'close' ELSE 'unknown' END AS access_type,
               e.epoch AS epoch,
               e.run_id AS run_id,
               e.tid AS tid,
               e.duration_ns AS duration_ns
        FROM events e JOIN files f ON f.id = e.file_id
        """,
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '1')",
    ]

    /// Version 2: what prefetching did, for `gofetch report`. `samples` holds the
    /// engine's cumulative figures about once a second while they change;
    /// `run_results` the run's summary (JSON, ``RunSummary``) when it ends.
    static let version2 = [
        """
        CREATE TABLE IF NOT EXISTS samples (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            time_ns INTEGER NOT NULL,
            epoch INTEGER NOT NULL,
            accesses INTEGER NOT NULL,
            cold_accesses INTEGER NOT NULL,
            covered_accesses INTEGER NOT NULL,
            stall_ns INTEGER NOT NULL,
            issued INTEGER NOT NULL,
            useful INTEGER NOT NULL,
            late INTEGER NOT NULL,
            wasted INTEGER NOT NULL,
            skipped INTEGER NOT NULL,
            failed INTEGER NOT NULL,
            bytes_prefetched INTEGER NOT NULL,
            outstanding_bytes INTEGER NOT NULL,
            budget_bytes INTEGER NOT NULL,
            events INTEGER NOT NULL,
            events_dropped INTEGER NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS samples_by_run_time ON samples(run_id, time_ns)",
        """
        CREATE TABLE IF NOT EXISTS run_results (
            run_id INTEGER PRIMARY KEY REFERENCES runs(id),
            summary TEXT NOT NULL
        )
        """,
        "UPDATE meta SET value = '2' WHERE key = 'schema_version'",
    ]

    /// Version 3: no index on events. Its B-tree took 0.9 µs of the 2.1 µs an insert
    /// costs (bench: the daemon's cost); a run's events are one range of ids instead
    /// (one writer at a time, ids ascending), kept per transaction in `run_spans`, and a
    /// query for one run reads that range. Events have no secondary index at all: an
    /// index on file_id (random inserts) cut the commit rate from 340 k to 130 k
    /// events/s; per-file figures scan.
    static let version3 = [
        "DROP INDEX IF EXISTS events_by_run_time",
        runSpansTable,
        "INSERT OR REPLACE INTO run_spans (run_id, first_event_id, last_event_id) SELECT run_id, MIN(id), MAX(id) FROM events GROUP BY run_id",
        "UPDATE meta SET value = '3' WHERE key = 'schema_version'",
    ]

    static let runSpansTable = """
        CREATE TABLE IF NOT EXISTS run_spans (
            run_id INTEGER PRIMARY KEY REFERENCES runs(id),
            first_event_id INTEGER NOT NULL,
            last_event_id INTEGER NOT NULL
        )
        """

    /// Widens a run's span to the events a transaction just inserted (ids `?2`…`?3`).
    static let extendRunSpan = """
        INSERT INTO run_spans (run_id, first_event_id, last_event_id) VALUES (?1, ?2, ?3)
        ON CONFLICT(run_id) DO UPDATE SET first_event_id = MIN(first_event_id, excluded.first_event_id),
                                          last_event_id = MAX(last_event_id, excluded.last_event_id)
        """

    /// The events of one run, as a condition on `events` (aliased `table`): the run's
    /// id range, then its id (another run's events may sit inside that range).
    /// A store older than version 3 (opened read-only) has the index on run_id instead.
    /// - Parameter run: the run's id as SQL: a number, or a column of an outer query.
    static func runCondition(_ run: String, table: String = "events", spans: Bool) -> String {
        guard spans else { return "\(table).run_id = \(run)" }
        return """
            \(table).id BETWEEN (SELECT first_event_id FROM run_spans WHERE run_id = \(run)) \
            AND (SELECT last_event_id FROM run_spans WHERE run_id = \(run)) AND \(table).run_id = \(run)
            """
    }

    static func migrator() -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            for statement in statements { try db.execute(sql: statement) }
        }
        migrator.registerMigration("v2") { db in
            for statement in version2 { try db.execute(sql: statement) }
        }
        migrator.registerMigration("v3") { db in
            for statement in version3 { try db.execute(sql: statement) }
        }
        return migrator
    }
}
