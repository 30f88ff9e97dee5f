import GRDB
import GoFetchEvents

/// What the trace store holds, for `gofetch stats`.
public struct StoreSummary: Sendable, Codable {
    public struct Run: Sendable, Codable {
        public var id: Int64
        public var command: String
        public var source: String
        public var startedNanoseconds: Int64
        public var endedNanoseconds: Int64?
        public var events: Int
    }

    public struct Epoch: Sendable, Codable {
        /// `nil`: events with no epoch tag.
        public var epoch: Int64?
        public var events: Int
        public var files: Int
        public var bytesRead: Int64
        public var reads: Int
        public var readWaitNanoseconds: Int64
        /// Reads slower than ``ReadTiming`` allows for the page cache, and their time: the stall.
        public var coldReads: Int
        public var stallNanoseconds: Int64
        /// Files with at least one cold read: a file's first read missing the cache is
        /// what stalls a reader; its later reads ride the kernel's readahead.
        public var coldFiles: Int
    }

    public struct TopFile: Sendable, Codable {
        public var path: String
        public var size: Int64
        public var opens: Int
        public var reads: Int
        public var bytesRead: Int64
        public var readWaitNanoseconds: Int64
        public var coldReads: Int
        public var stallNanoseconds: Int64
    }

    /// How `topFiles` is ordered.
    public enum FileOrder: String, Sendable, Codable, CaseIterable {
        case bytes, stall
    }

    public var files: Int
    public var filesRead: Int
    public var events: Int
    public var eventsByKind: [String: Int]
    public var bytesRead: Int64
    public var readWaitNanoseconds: Int64
    public var firstNanoseconds: Int64?
    public var lastNanoseconds: Int64?
    public var processes: Int
    public var runs: [Run]
    public var epochs: [Epoch]
    public var topFiles: [TopFile]
}

extension TraceStore {
    /// Summarises the store; `runID` restricts it to one run, `window` to the events
    /// whose wall-clock time (nanoseconds since the Unix epoch) falls in it.
    /// - Parameters:
    ///   - timing: tells cold reads from warm ones by their measured time.
    ///   - order: rank the top files by bytes read or by stall.
    public func summary(top: Int, runID: Int64? = nil, window: Range<Int64>? = nil, timing: ReadTiming = ReadTiming(),
                        order: StoreSummary.FileOrder = .bytes) throws(TraceStoreError) -> StoreSummary {
        let cold = Self.coldRead(timing)
        return try read { db in
            var conditions: [String] = []
            if let runID { conditions.append(runCondition(runID)) }
            if let window { conditions.append("time_ns >= \(window.lowerBound) AND time_ns < \(window.upperBound)") }
            let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
            let and = conditions.isEmpty ? "WHERE" : "\(filter) AND"
            let totals = try Row.fetchOne(db, sql: """
                SELECT COUNT(*), MIN(time_ns), MAX(time_ns), COUNT(DISTINCT pid), COUNT(DISTINCT file_id) FROM events \(filter)
                """)!
            let reads = try Row.fetchOne(db, sql: """
                SELECT COALESCE(SUM(length), 0), COALESCE(SUM(duration_ns), 0) FROM events \(and) kind = 2
                """)!
            var byKind: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT kind, COUNT(*) FROM events \(filter) GROUP BY kind") {
                let kind = AccessKind(rawValue: UInt8(clamping: row[0] as Int64)).map(\.description) ?? "kind \(row[0] as Int64)"
                byKind[kind] = row[1]
            }
            let runs = try Row.fetchAll(db, sql: """
                SELECT r.id, r.command, r.source, r.started_ns, r.ended_ns,
                       (SELECT COUNT(*) FROM events e WHERE \(runCondition(run: "r.id", table: "e"))
                        \(window.map { "AND e.time_ns >= \($0.lowerBound) AND e.time_ns < \($0.upperBound)" } ?? ""))
                FROM runs r \(runID == nil ? "" : "WHERE r.id = \(runID!)") ORDER BY r.id
                """).map {
                StoreSummary.Run(id: $0[0], command: $0[1], source: $0[2], startedNanoseconds: $0[3], endedNanoseconds: $0[4], events: $0[5])
            }
            let epochs = try Row.fetchAll(db, sql: """
                SELECT epoch, COUNT(*), COUNT(DISTINCT file_id), COALESCE(SUM(CASE kind WHEN 2 THEN length ELSE 0 END), 0),
                       SUM(kind = 2), COALESCE(SUM(CASE kind WHEN 2 THEN duration_ns ELSE 0 END), 0),
                       SUM(\(cold)), COALESCE(SUM(CASE WHEN \(cold) THEN duration_ns ELSE 0 END), 0),
                       COUNT(DISTINCT CASE WHEN \(cold) THEN file_id END)
                FROM events \(filter) GROUP BY epoch ORDER BY epoch
                """).map {
                StoreSummary.Epoch(epoch: $0[0], events: $0[1], files: $0[2], bytesRead: $0[3], reads: $0[4],
                                   readWaitNanoseconds: $0[5], coldReads: $0[6], stallNanoseconds: $0[7], coldFiles: $0[8])
            }
            let topFiles = try Self.topFiles(db, top: top, filter: filter, cold: cold, order: order)
            return StoreSummary(
                files: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM files") ?? 0,
                filesRead: totals[4],
                events: totals[0], eventsByKind: byKind, bytesRead: reads[0], readWaitNanoseconds: reads[1],
                firstNanoseconds: totals[1], lastNanoseconds: totals[2], processes: totals[3],
                runs: runs, epochs: epochs, topFiles: topFiles)
        }
    }

    /// The `top` files most read (or with the most stall), of `runID` when given: one scan.
    public func topFiles(_ top: Int, runID: Int64? = nil, timing: ReadTiming = ReadTiming(), order: StoreSummary.FileOrder) throws(TraceStoreError) -> [StoreSummary.TopFile] {
        try read { db in
            try Self.topFiles(db, top: top, filter: runID.map { "WHERE \(runCondition($0))" } ?? "", cold: Self.coldRead(timing), order: order)
        }
    }

    /// A read is cold when duration_ns > base + length × ns per byte (ReadTiming.isCold), in SQL
    /// (`tests/contracts/read-rule.json`). The store keeps a u64 length as its i64 bit pattern:
    /// one past 2⁶³ reads back negative, and is taken as the unsigned number it was.
    private static func coldRead(_ timing: ReadTiming) -> String {
        "(kind = 2 AND duration_ns > \(timing.baseNanoseconds) + (CASE WHEN length < 0 THEN length + 18446744073709551616.0 ELSE length END) * \(1e9 / timing.warmBytesPerSecond))"
    }

    private static func topFiles(_ db: Database, top: Int, filter: String, cold: String, order: StoreSummary.FileOrder) throws -> [StoreSummary.TopFile] {
        try Row.fetchAll(db, sql: """
            SELECT f.path, f.size, t.opens, t.reads, t.bytes, t.wait, t.cold, t.stall FROM (
                SELECT file_id,
                       SUM(kind = 1) AS opens, SUM(kind = 2) AS reads,
                       SUM(CASE kind WHEN 2 THEN length ELSE 0 END) AS bytes,
                       SUM(CASE kind WHEN 2 THEN duration_ns ELSE 0 END) AS wait,
                       SUM(\(cold)) AS cold,
                       SUM(CASE WHEN \(cold) THEN duration_ns ELSE 0 END) AS stall
                FROM events \(filter) GROUP BY file_id ORDER BY \(order.rawValue) DESC LIMIT ?
            ) t JOIN files f ON f.id = t.file_id ORDER BY t.\(order.rawValue) DESC
            """, arguments: [top]).map {
            StoreSummary.TopFile(path: $0[0], size: $0[1], opens: $0[2], reads: $0[3], bytesRead: $0[4], readWaitNanoseconds: $0[5],
                                 coldReads: $0[6], stallNanoseconds: $0[7])
        }
    }
}
