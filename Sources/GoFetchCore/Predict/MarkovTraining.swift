import GRDB

/// Fits a Markov predictor from the stored traces.
public enum MarkovTraining {
    public struct Report: Sendable, Codable {
        public var opens: Int
        public var transitions: Int
        public var contexts: Int
        public var contextsEvicted: Int
        public var seconds: Double
    }

    /// Replays every stored open, in order, per stream (worker when tagged, else process).
    public static func train(_ markov: MarkovPredictor, from store: TraceStore, runID: Int64? = nil, progress: ((Int) -> Void)? = nil) throws(TraceStoreError) -> Report {
        let start = Clock.monotonicNanoseconds()
        var opens = 0
        try store.read { db in
            let filter = runID.map { "AND run_id = \($0)" } ?? ""
            let cursor = try Row.fetchCursor(db, sql: "SELECT file_id, pid, worker_id, run_id FROM events WHERE kind = 1 \(filter) ORDER BY id")
            while let row = try cursor.next() {
                let worker: Int64? = row[2]
                // Streams of different runs never continue each other.
                let pid = UInt32(truncatingIfNeeded: (row[1] as Int64) ^ ((row[3] as Int64) << 24))
                let stream = worker.map { StreamKey(pid: UInt32(truncatingIfNeeded: row[3] as Int64), worker: Int32(truncatingIfNeeded: $0)) }
                    ?? StreamKey(pid: pid, worker: -1)
                markov.observe(file: row[0], stream: stream)
                opens += 1
                if opens % 1_000_000 == 0 { progress?(opens) }
            }
        }
        return Report(
            opens: opens, transitions: markov.transitionsLearned, contexts: markov.contextCount,
            contextsEvicted: markov.contextsEvicted, seconds: Double(Clock.monotonicNanoseconds() - start) / 1e9)
    }
}
