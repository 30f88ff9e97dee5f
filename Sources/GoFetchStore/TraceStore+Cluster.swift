import Foundation
import GRDB
import GoFetchEvents

/// One stored event as its row holds it: the cluster's store copies rows as they are.
public struct EventRow: Sendable, Equatable {
    /// The row's id in the store it was read from.
    public var id: Int64
    public var timeNanoseconds: Int64
    public var monotonicNanoseconds: Int64
    public var pid: Int64
    public var tid: Int64
    public var uid: Int64
    public var workerID: Int64?
    public var epoch: Int64?
    public var fileID: Int64
    public var kind: Int64
    public var offset: Int64
    public var length: Int64
    public var durationNanoseconds: Int64
    public var source: Int64
    public var flags: Int64

    public init(id: Int64, timeNanoseconds: Int64, monotonicNanoseconds: Int64, pid: Int64, tid: Int64, uid: Int64,
                workerID: Int64?, epoch: Int64?, fileID: Int64, kind: Int64, offset: Int64, length: Int64,
                durationNanoseconds: Int64, source: Int64, flags: Int64) {
        self.id = id
        self.timeNanoseconds = timeNanoseconds
        self.monotonicNanoseconds = monotonicNanoseconds
        self.pid = pid
        self.tid = tid
        self.uid = uid
        self.workerID = workerID
        self.epoch = epoch
        self.fileID = fileID
        self.kind = kind
        self.offset = offset
        self.length = length
        self.durationNanoseconds = durationNanoseconds
        self.source = source
        self.flags = flags
    }
}

extension TraceStore {
    /// This store's identity in the cluster's store: a random id kept in `meta`, made
    /// when first asked for (a store's file ids mean something only within it).
    public func storeID() throws(TraceStoreError) -> String {
        try perform { db in
            try db.execute(sql: "INSERT OR IGNORE INTO meta (key, value) VALUES ('store_id', ?)", arguments: [UUID().uuidString.lowercased()])
            return try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'store_id'") ?? ""
        }
    }

    /// Up to `limit` of the run's events after the row `after`, in id order.
    public func eventRows(runID: Int64, after: Int64, limit: Int) throws(TraceStoreError) -> [EventRow] {
        try read { db in
            let cursor = try Row.fetchCursor(db, sql: """
                SELECT id, time_ns, mono_ns, pid, tid, uid, worker_id, epoch, file_id, kind, offset, length, duration_ns, source, flags
                FROM events WHERE \(runCondition(runID)) AND id > ? ORDER BY id LIMIT ?
                """, arguments: [after, limit])
            var rows: [EventRow] = []
            while let row = try cursor.next() {
                rows.append(EventRow(
                    id: row[0], timeNanoseconds: row[1], monotonicNanoseconds: row[2], pid: row[3], tid: row[4], uid: row[5],
                    workerID: row[6], epoch: row[7], fileID: row[8], kind: row[9], offset: row[10], length: row[11],
                    durationNanoseconds: row[12], source: row[13], flags: row[14]))
            }
            return rows
        }
    }

    /// How many of the run's events come after the row `after`.
    public func eventCount(runID: Int64, after: Int64) throws(TraceStoreError) -> Int {
        try read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM events WHERE \(runCondition(runID)) AND id > ?", arguments: [after]) ?? 0
        }
    }

    /// The records of the given files (those the store has).
    public func fileRecords(ids: [Int64]) throws(TraceStoreError) -> [FileRecord] {
        guard !ids.isEmpty else { return [] }
        return try read { db in
            var records: [FileRecord] = []
            for start in stride(from: 0, to: ids.count, by: 500) {
                let part = ids[start..<min(start + 500, ids.count)]
                let list = part.map(String.init).joined(separator: ",")
                records += try Row.fetchAll(db, sql: "SELECT \(Self.fileColumns) FROM files WHERE id IN (\(list))").map(Self.fileRecord)
            }
            return records
        }
    }

    /// Adds a run as another store recorded it (a copy of the cluster's, for reading).
    public func insertRun(_ run: StoredRun) throws(TraceStoreError) {
        try perform { db in
            try db.execute(
                sql: "INSERT INTO runs (id, started_ns, ended_ns, command, source) VALUES (?, ?, ?, ?, ?)",
                arguments: [run.id, run.startedNanoseconds, run.endedNanoseconds, run.command, run.source])
        }
    }

    /// Adds files and rows of events to a run, in one transaction, rows in the order given.
    public func insertRows(files: [FileRecord], events: [EventRow], runID: Int64) throws(TraceStoreError) {
        try perform { db in
            try Self.upsert(files, db)
            guard !events.isEmpty else { return }
            let insert = try db.cachedStatement(sql: Self.insertEvents(rows: 1))
            var firstID: Int64 = 0
            for row in events {
                try insert.execute(arguments: [
                    runID, row.timeNanoseconds, row.monotonicNanoseconds, row.pid, row.tid, row.uid, row.workerID, row.epoch,
                    row.fileID, row.kind, row.offset, row.length, row.durationNanoseconds, row.source, row.flags,
                ])
                if firstID == 0 { firstID = db.lastInsertedRowID }
            }
            try db.cachedStatement(sql: StoreSchema.extendRunSpan).execute(arguments: [runID, firstID, db.lastInsertedRowID])
        }
    }
}
