import GRDB
import GoFetchEvents

extension TraceStore {
    /// Events stored (of `runID` when given) of the given kinds.
    public func eventCount(runID: Int64? = nil, kinds: [AccessKind] = AccessKind.accesses) throws(TraceStoreError) -> Int {
        try read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM events WHERE \(filter(runID: runID, kinds: kinds))") ?? 0
        }
    }

    /// Streams the stored events, in the order they were committed, as the live
    /// predictors saw them. Runs never continue each other's streams: each event's
    /// `parentPID` is its run, and untagged events' `pid` is mixed with the run.
    /// - Parameter body: returns `false` to stop early.
    public func replay(runID: Int64? = nil, kinds: [AccessKind] = AccessKind.accesses, _ body: (TraceEvent) -> Bool) throws(TraceStoreError) {
        try read { db in
            let cursor = try Row.fetchCursor(db, sql: """
                SELECT file_id, kind, pid, tid, uid, worker_id, epoch, time_ns, mono_ns, offset, length, duration_ns, source, flags, run_id
                FROM events WHERE \(filter(runID: runID, kinds: kinds)) ORDER BY id
                """)
            while let row = try cursor.next() {
                let run: Int64 = row[14]
                let worker: Int64? = row[5]
                let pid: Int64 = row[2]
                var event = TraceEvent(
                    fileID: row[0], kind: AccessKind(rawValue: UInt8(truncatingIfNeeded: row[1] as Int64)) ?? .open,
                    flags: AccessFlags(rawValue: UInt8(truncatingIfNeeded: row[13] as Int64)),
                    source: TraceSource(rawValue: UInt8(truncatingIfNeeded: row[12] as Int64)) ?? .preload,
                    pid: UInt32(truncatingIfNeeded: pid ^ (run << 24)), tid: UInt32(truncatingIfNeeded: row[3] as Int64),
                    uid: UInt32(truncatingIfNeeded: row[4] as Int64),
                    workerID: worker.map { Int32(truncatingIfNeeded: $0) },
                    epoch: (row[6] as Int64?).map { UInt32(truncatingIfNeeded: $0) },
                    wallNanoseconds: row[7], monotonicNanoseconds: UInt64(bitPattern: row[8] as Int64),
                    offset: UInt64(bitPattern: row[9] as Int64), length: UInt64(bitPattern: row[10] as Int64),
                    durationNanoseconds: UInt32(truncatingIfNeeded: row[11] as Int64))
                event.parentPID = UInt32(truncatingIfNeeded: run)
                if !body(event) { break }
            }
        }
    }

    private func filter(runID: Int64?, kinds: [AccessKind]) -> String {
        var clauses = ["kind IN (\(kinds.map { String($0.rawValue) }.joined(separator: ",")))"]
        if let runID { clauses.append(runCondition(runID)) }
        return clauses.joined(separator: " AND ")
    }
}
