import GRDB

/// One stored open and the stream it belongs to.
public struct StoredOpen: Sendable, Hashable {
    public var stream: StreamKey
    public var file: FileID

    public init(stream: StreamKey, file: FileID) {
        self.stream = stream
        self.file = file
    }
}

extension TraceStore {
    /// Replays every stored open, in order, with its stream: the worker when the
    /// event was tagged with one, else the process. Streams of different runs never
    /// continue each other. This is what the predictors are trained on.
    public func forEachOpen(runID: Int64? = nil, _ body: (StoredOpen) -> Void) throws(TraceStoreError) {
        try read { db in
            let filter = runID.map { "AND run_id = \($0)" } ?? ""
            let cursor = try Row.fetchCursor(db, sql: "SELECT file_id, pid, worker_id, run_id FROM events WHERE kind = 1 \(filter) ORDER BY id")
            while let row = try cursor.next() {
                let worker: Int64? = row[2]
                let pid = UInt32(truncatingIfNeeded: (row[1] as Int64) ^ ((row[3] as Int64) << 24))
                let stream = worker.map { StreamKey(pid: UInt32(truncatingIfNeeded: row[3] as Int64), worker: Int32(truncatingIfNeeded: $0)) }
                    ?? StreamKey(pid: pid, worker: -1)
                body(StoredOpen(stream: stream, file: row[0]))
            }
        }
    }

    /// Every stored open, in order (see ``forEachOpen(runID:_:)``).
    public func opens(runID: Int64? = nil) throws(TraceStoreError) -> [StoredOpen] {
        var opens: [StoredOpen] = []
        try forEachOpen(runID: runID) { opens.append($0) }
        return opens
    }
}
