import PostgresNIO

/// The cluster's store in PostgreSQL (`docs/store.md`): the embedded store's tables,
/// each row marked with the store (`store_id`) and node it came from.
///
/// - `runs`: one row per run of every daemon; `copied_event_id` is the last of the
///   run's local event ids copied (the copier resumes after it, in the transaction
///   that copies the rows, so no row is copied twice or skipped); `completed` once
///   its events, samples and summary are all there (later daemons leave it alone).
/// - `files`: per store, as that store numbers them; the same path on two nodes is
///   two rows (readers join by path).
/// - `events`: the embedded store's columns, keyed by run and local id. No foreign
///   key to `runs`: PostgreSQL checks one with a trigger and a query per inserted
///   row, which cost more of the server's CPU than the insert; the copier writes a
///   run's row before its events (version 2 dropped it; version 1 had one).
/// - `samples`, the run's summary (`runs.summary`), and the seed's `traces` view
///   with each event's node and job.
/// - `models`: models fitted on the cluster's runs (``ClusterModels``).
enum ClusterSchema {
    static let version = 2

    static let statements: [PostgresQuery] = [
        """
        CREATE TABLE IF NOT EXISTS gofetch_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)
        """,
        """
        CREATE TABLE IF NOT EXISTS runs (
            id BIGSERIAL PRIMARY KEY,
            store_id TEXT NOT NULL,
            local_id BIGINT NOT NULL,
            node TEXT NOT NULL,
            job TEXT NOT NULL,
            started_ns BIGINT NOT NULL,
            ended_ns BIGINT,
            command TEXT NOT NULL,
            source TEXT NOT NULL,
            copied_event_id BIGINT NOT NULL DEFAULT 0,
            completed BOOLEAN NOT NULL DEFAULT false,
            summary TEXT,
            UNIQUE (store_id, local_id)
        )
        """,
        "CREATE INDEX IF NOT EXISTS runs_by_node_job ON runs (node, job)",
        """
        CREATE TABLE IF NOT EXISTS files (
            store_id TEXT NOT NULL,
            id BIGINT NOT NULL,
            path TEXT NOT NULL,
            dev BIGINT NOT NULL,
            ino BIGINT NOT NULL,
            size BIGINT NOT NULL,
            first_seen_ns BIGINT NOT NULL,
            PRIMARY KEY (store_id, id)
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS events (
            run_id BIGINT NOT NULL,
            local_id BIGINT NOT NULL,
            time_ns BIGINT NOT NULL,
            mono_ns BIGINT NOT NULL,
            pid BIGINT NOT NULL,
            tid BIGINT NOT NULL,
            uid BIGINT NOT NULL,
            worker_id BIGINT,
            epoch BIGINT,
            file_id BIGINT NOT NULL,
            kind SMALLINT NOT NULL,
            "offset" BIGINT NOT NULL,
            length BIGINT NOT NULL,
            duration_ns BIGINT NOT NULL,
            source SMALLINT NOT NULL,
            flags SMALLINT NOT NULL,
            PRIMARY KEY (run_id, local_id)
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS samples (
            run_id BIGINT NOT NULL,
            time_ns BIGINT NOT NULL, epoch BIGINT NOT NULL, accesses BIGINT NOT NULL, cold_accesses BIGINT NOT NULL,
            covered_accesses BIGINT NOT NULL, stall_ns BIGINT NOT NULL, issued BIGINT NOT NULL, useful BIGINT NOT NULL,
            late BIGINT NOT NULL, wasted BIGINT NOT NULL, skipped BIGINT NOT NULL, failed BIGINT NOT NULL,
            bytes_prefetched BIGINT NOT NULL, outstanding_bytes BIGINT NOT NULL, budget_bytes BIGINT NOT NULL,
            events BIGINT NOT NULL, events_dropped BIGINT NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS samples_by_run ON samples (run_id, time_ns)",
        "CREATE TABLE IF NOT EXISTS models (name TEXT PRIMARY KEY, data BYTEA NOT NULL, saved_ns BIGINT NOT NULL)",
        """
        CREATE OR REPLACE VIEW traces AS
        SELECT e.time_ns / 1e9 AS timestamp,
               e.pid AS pid,
               e.worker_id AS worker_id,
               f.path AS file_path,
               e."offset" AS "offset",
               e.length AS length,
               CASE e.kind WHEN 1 THEN 'open' WHEN 2 THEN 'read' WHEN 3 THEN 'mmap' WHEN 4 THEN 'close' ELSE 'unknown' END AS access_type,
               e.epoch AS epoch,
               e.run_id AS run_id,
               e.tid AS tid,
               e.duration_ns AS duration_ns,
               r.node AS node,
               r.job AS job
        FROM events e JOIN runs r ON r.id = e.run_id JOIN files f ON f.store_id = r.store_id AND f.id = e.file_id
        """,
        "INSERT INTO gofetch_meta (key, value) VALUES ('schema_version', '2') ON CONFLICT (key) DO NOTHING",
    ]

    /// From version 1: the per-row foreign-key checks go.
    static let fromVersion1: [PostgresQuery] = [
        "ALTER TABLE events DROP CONSTRAINT IF EXISTS events_run_id_fkey",
        "ALTER TABLE samples DROP CONSTRAINT IF EXISTS samples_run_id_fkey",
        "UPDATE gofetch_meta SET value = '2' WHERE key = 'schema_version'",
    ]

    /// Checks the schema, and creates it in a database that has none. Run at every
    /// connection, so it only reads when the schema is there: the DDL takes locks
    /// (and ownership) a daemon should not need to copy rows.
    static func ensure(on connection: ClusterConnection) throws(ClusterStoreError) {
        let found = try connection.rows("SELECT to_regclass('public.gofetch_meta') IS NOT NULL, to_regclass('public.runs') IS NOT NULL") {
            try $0.decode((Bool, Bool).self)
        }
        let (meta, runs) = found.first ?? (false, false)
        if meta {
            let version = try storedVersion(on: connection)
            if version == String(Self.version) { return }
            if version == "1" {
                try underLock(on: connection) { () throws(ClusterStoreError) in
                    // Another daemon may have moved it on while this one waited for the lock.
                    guard try storedVersion(on: connection) == "1" else { return }
                    for statement in fromVersion1 { try connection.execute(statement) }
                }
                return
            }
            throw ClusterStoreError(address: connection.address.description,
                                    problem: "holds gofetch's schema version \(version ?? "(none)"); this gofetch reads and writes version \(Self.version)",
                                    permanent: true)
        }
        if runs {
            throw ClusterStoreError(address: connection.address.description,
                                    problem: "has a table 'runs' that gofetch did not make (no gofetch_meta); give gofetch a database of its own",
                                    permanent: true)
        }
        try underLock(on: connection) { () throws(ClusterStoreError) in
            for statement in statements { try connection.execute(statement) }
        }
    }

    private static func storedVersion(on connection: ClusterConnection) throws(ClusterStoreError) -> String? {
        try connection.rows("SELECT value FROM gofetch_meta WHERE key = 'schema_version'") { try $0.decode(String.self) }.first
    }

    /// Schema changes, one daemon at a time (an advisory lock): concurrent `CREATE …
    /// IF NOT EXISTS` of one table can fail in PostgreSQL.
    private static func underLock(on connection: ClusterConnection, _ body: () throws(ClusterStoreError) -> Void) throws(ClusterStoreError) {
        try connection.transaction { () throws(ClusterStoreError) in
            try connection.execute("SELECT pg_advisory_xact_lock(4742065863)")
            try body()
        }
    }
}
