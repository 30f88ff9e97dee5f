import Foundation
import GoFetchConfig
import GoFetchEvents
import Logging
import PostgresNIO

/// The cluster's runs as one embedded store, for the commands that read traces
/// (`train`, `eval`, `stats`, `report`): the runs that match the filters are copied
/// from PostgreSQL into a new SQLite file, which those commands then query as they
/// query this machine's store. Each run keeps the cluster's id (so `--run` means the
/// same in both); files are numbered by path across nodes (a data set mounted at one
/// path on every node is one set of files); a run's command is prefixed with its node and job.
public enum ClusterSnapshot {
    public struct Filter: Sendable {
        public var node: String?
        public var job: String?
        public init(node: String? = nil, job: String? = nil) {
            self.node = node
            self.job = job
        }
    }

    public struct Copied: Sendable {
        public var runs: Int
        public var events: Int
        public var files: Int
    }

    /// Events read from the server per query.
    static let page = 50_000

    /// Copies the matching runs into a new store at `path` (which must not exist).
    public static func make(
        from address: ClusterStoreAddress, filter: Filter, path: String, logger: Logger
    ) throws(ClusterStoreError) -> (TraceStore, Copied) {
        let connection = try ClusterConnection.connect(address, logger: logger)
        defer { connection.close() }
        let store: TraceStore
        do {
            store = try TraceStore(path: path)
        } catch {
            throw ClusterStoreError(address: address.description, problem: "making the local copy \(path): \(error)")
        }
        // One snapshot of the server for all the reads: daemons copying meanwhile add
        // events (and the files they name) that no read here may see half of.
        try connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        let exists = try connection.rows("SELECT to_regclass('public.runs') IS NOT NULL") { try $0.decode(Bool.self) }
        guard exists.first == true else {
            throw ClusterStoreError(address: address.description, problem: "holds no gofetch runs yet (no daemon has written to it)")
        }
        let runs = try connection.rows("""
            SELECT id, store_id, node, job, started_ns, ended_ns, command, source, summary FROM runs
            WHERE (\(filter.node)::text IS NULL OR node = \(filter.node)) AND (\(filter.job)::text IS NULL OR job = \(filter.job))
            ORDER BY started_ns, id
            """) { row in try row.decode((Int64, String, String, String, Int64, Int64?, String, String, String?).self) }
        var pathIDs: [String: Int64] = [:]
        var copied = Copied(runs: 0, events: 0, files: 0)
        func local(_ work: () throws(TraceStoreError) -> Void) throws(ClusterStoreError) {
            do { try work() } catch { throw ClusterStoreError(address: address.description, problem: "writing the local copy: \(error)") }
        }
        for (id, storeID, node, job, started, ended, command, source, summary) in runs {
            let label = job.isEmpty ? "[\(node)] " : "[\(node), job \(job)] "
            try local { () throws(TraceStoreError) in
                try store.insertRun(StoredRun(id: id, command: label + command, source: source, startedNanoseconds: started, endedNanoseconds: ended))
            }
            // This store's numbering of the run's files → the copy's, by path.
            let files = try connection.rows("""
                SELECT f.id, f.path, f.dev, f.ino, f.size, f.first_seen_ns FROM files f
                WHERE f.store_id = \(storeID) AND f.id IN (SELECT DISTINCT file_id FROM events WHERE run_id = \(id))
                """) { row in try row.decode((Int64, String, Int64, Int64, Int64, Int64).self) }
            var renumber: [Int64: Int64] = [:]
            var newFiles: [FileRecord] = []
            for (fileID, path, device, inode, size, seen) in files {
                if let known = pathIDs[path] {
                    renumber[fileID] = known
                } else {
                    let next = Int64(pathIDs.count + 1)
                    pathIDs[path] = next
                    renumber[fileID] = next
                    newFiles.append(FileRecord(id: next, path: path, device: UInt64(bitPattern: device), inode: UInt64(bitPattern: inode),
                                               size: UInt64(bitPattern: size), firstSeenWallNanoseconds: seen))
                }
            }
            copied.files += newFiles.count
            try local { () throws(TraceStoreError) in try store.insertRows(files: newFiles, events: [], runID: id) }
            var after: Int64 = -1
            while true {
                let rows = try connection.rows("""
                    SELECT local_id, time_ns, mono_ns, pid, tid, uid, worker_id, epoch, file_id, kind::int8, "offset", length,
                           duration_ns, source::int8, flags::int8
                    FROM events WHERE run_id = \(id) AND local_id > \(after) ORDER BY local_id LIMIT \(Self.page)
                    """) { row in
                    let (localID, time, mono, pid, tid, uid, worker, epoch, file, kind, offset, length, duration, source, flags) = try row.decode(
                        (Int64, Int64, Int64, Int64, Int64, Int64, Int64?, Int64?, Int64, Int64, Int64, Int64, Int64, Int64, Int64).self)
                    return EventRow(
                        id: localID, timeNanoseconds: time, monotonicNanoseconds: mono, pid: pid, tid: tid, uid: uid, workerID: worker,
                        epoch: epoch, fileID: file, kind: kind, offset: offset, length: length, durationNanoseconds: duration,
                        source: source, flags: flags)
                }
                guard let last = rows.last else { break }
                var renumbered = rows
                for index in renumbered.indices {
                    guard let mapped = renumber[renumbered[index].fileID] else {
                        throw ClusterStoreError(address: address.description, problem: "run \(id) names file \(renumbered[index].fileID), which its store never sent")
                    }
                    renumbered[index].fileID = mapped
                }
                try local { () throws(TraceStoreError) in try store.insertRows(files: [], events: renumbered, runID: id) }
                copied.events += rows.count
                after = last.id
                if rows.count < Self.page { break }
            }
            let samples = try connection.rows("""
                SELECT time_ns, epoch, accesses, cold_accesses, covered_accesses, stall_ns, issued, useful, late, wasted, skipped,
                       failed, bytes_prefetched, outstanding_bytes, budget_bytes, events, events_dropped
                FROM samples WHERE run_id = \(id) ORDER BY time_ns
                """) { row in
                let (time, epoch, accesses, cold, covered, stall, issued, useful, late, wasted, skipped, failed, bytes, outstanding, budget,
                     events, dropped) = try row.decode(
                    (Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64).self)
                return StoredSample(
                    wallNanoseconds: time, epoch: Int(epoch), accesses: Int(accesses), coldAccesses: Int(cold), coveredAccesses: Int(covered),
                    stallNanoseconds: stall, issued: Int(issued), useful: Int(useful), late: Int(late), wasted: Int(wasted),
                    skipped: Int(skipped), failed: Int(failed), bytesPrefetched: bytes, outstandingBytes: Int(outstanding),
                    budgetBytes: Int(budget), events: Int(events), eventsDropped: Int(dropped))
            }
            try local { () throws(TraceStoreError) in
                for sample in samples { try store.writeSample(sample, runID: id) }
                if let summary { try store.saveResult(summary, runID: id) }
            }
            copied.runs += 1
        }
        try? connection.execute("COMMIT")
        return (store, copied)
    }
}
