import GRDB

/// The trace store's schema, version 2 (`docs/store.md`).
///
/// Every statement is idempotent (`IF NOT EXISTS`) so that the Python hook, which
/// writes the same schema with the standard library's `sqlite3`, and the daemon
/// can each create the database first.
enum StoreSchema {
    static let version = 2

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
        // One secondary index, on (run, time): events arrive in time order, so it
        // grows at its end and costs little. An index on file_id takes random
        // inserts and cut the commit rate from 340 k to 130 k events/s here;
        // per-file figures scan instead (bench/ingest measures this).
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

    static func migrator() -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            for statement in statements { try db.execute(sql: statement) }
        }
        migrator.registerMigration("v2") { db in
            for statement in version2 { try db.execute(sql: statement) }
        }
        return migrator
    }
}
