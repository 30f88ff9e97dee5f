import Foundation
import GRDB
@testable import GoFetchEvents
@testable import GoFetchMetrics
@testable import GoFetchPredict
@testable import GoFetchSchedule
@testable import GoFetchStore
import Testing

@Suite("gofetch report")
struct ReportTests {
    /// A job that reads `files` files once per epoch in a shuffled order; in epoch 1
    /// the first `coldInFirst` reads take 5 ms (cold), every other read 20 µs (warm).
    func job(files: Int, epochs: Int, coldPerEpoch: [Int], start: Int64 = 1_000_000_000_000, seed: UInt64 = 7) -> [TraceEvent] {
        var generator = SplitMix64(seed: seed)
        var events: [TraceEvent] = []
        var time = start
        for epoch in 0..<epochs {
            for (index, file) in (1...FileID(files)).shuffled(using: &generator).enumerated() {
                time += 10_000_000
                events.append(TraceEvent(fileID: file, kind: .open, pid: 10, tid: 10, uid: 0, wallNanoseconds: time,
                                         monotonicNanoseconds: UInt64(time), offset: 0, length: 0, durationNanoseconds: 0))
                let cold = index < coldPerEpoch[epoch]
                events.append(TraceEvent(fileID: file, kind: .read, pid: 10, tid: 10, uid: 0, wallNanoseconds: time + 1_000,
                                         monotonicNanoseconds: UInt64(time + 1_000), offset: 0, length: 4_096,
                                         durationNanoseconds: cold ? 5_000_000 : 20_000))
            }
        }
        return events
    }

    func files(_ count: Int) -> [FileRecord] {
        (1...count).map { FileRecord(id: FileID($0), path: "/data/<img \($0)>.jpg", device: 1, inode: UInt64($0), size: 4_096, firstSeenWallNanoseconds: 0) }
    }

    @Test("a run's reads are split into epochs by the live engine's rule, with cold reads, stall and files by stall")
    func epochsFromReplay() throws {
        let directory = TemporaryDirectory()
        let store = try TraceStore(path: directory.file("t.db"))
        let baselineRun = try store.beginRun(command: "python train.py", source: "trace")
        try store.write(files: files(40), events: job(files: 40, epochs: 3, coldPerEpoch: [40, 40, 40])[...], runID: baselineRun)
        try store.endRun(baselineRun)
        _ = try store.beginRun(command: "python other.py", source: "trace")
        let run = try store.beginRun(command: "python train.py", source: "run")
        try store.write(files: [], events: job(files: 40, epochs: 3, coldPerEpoch: [12, 0, 1], start: 2_000_000_000_000)[...], runID: run)
        try store.endRun(run)

        let report = try RunReport.load(store: store, runID: run)
        #expect(report.epochs.map(\.coldReads) == [12, 0, 1])
        #expect(report.epochs.map(\.reads) == [40, 40, 40])
        #expect(report.epochs.map(\.files) == [40, 40, 40])
        #expect(report.epochs.map(\.stallNanoseconds) == [60_000_000, 0, 5_000_000])
        #expect(report.coldReads == 13 && report.stallNanoseconds == 65_000_000)
        #expect(report.timeline.reduce(0) { $0 + $1.cold } == 13)
        #expect(report.timeline.reduce(0) { $0 + $1.warm } == 107)
        #expect(report.coldReadLatency == [HistogramBucket(upToNanoseconds: 5_000_000, count: 13)])
        // Every file with a cold read (one may have had two, in two epochs), most stall first.
        #expect(report.topFiles.reduce(0) { $0 + $1.stallNanoseconds } == 65_000_000)
        #expect(report.topFiles.reduce(0) { $0 + $1.coldReads } == 13)
        #expect(report.topFiles.map(\.stallNanoseconds) == report.topFiles.map(\.stallNanoseconds).sorted(by: >))

        // The baseline is the newest trace run of the same command, before this run.
        let baseline = try #require(try RunReport.baselineRun(in: store, for: report.run))
        #expect(baseline.id == baselineRun)
        let page = try ReportPage.forRun(store: store, runID: run, timing: ReadTiming())
        #expect(page.runs.first?.baseline?.epochs.map(\.coldReads) == [40, 40, 40])
        let html = page.render()
        #expect(html.contains("without prefetch (run \(baselineRun))"))
        #expect(html.contains("stall removed"))
        // 600 ms → 65 ms.
        #expect(html.contains("<div class=\"value\">89.2 %</div><div class=\"name\">stall removed</div>"))
        // File names are text, never markup.
        #expect(html.contains("/data/&lt;img ") && !html.contains("<img "))
        #expect(!html.contains("<script"))
        #expect(!html.contains("http://") || html.components(separatedBy: "http://").count - 1 == html.components(separatedBy: "xmlns=\"http://www.w3.org/2000/svg\"").count - 1)

        #expect(throws: ReportError.self) { try RunReport.load(store: store, runID: 99) }
    }

    @Test("the epoch tag of the Python client decides epochs when events carry one")
    func taggedEpochs() throws {
        let directory = TemporaryDirectory()
        let store = try TraceStore(path: directory.file("t.db"))
        let run = try store.beginRun(command: "job", source: "run")
        // Two epochs of only 5 of 10 files each: no repetition, but tagged.
        var events: [TraceEvent] = []
        for (index, file) in ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10] as [FileID]).enumerated() {
            let time = Int64(1_000_000_000 + index * 1_000_000)
            events.append(TraceEvent(fileID: file, kind: .open, pid: 1, tid: 1, uid: 0, epoch: index < 5 ? 0 : 1, wallNanoseconds: time,
                                     monotonicNanoseconds: UInt64(time), offset: 0, length: 0, durationNanoseconds: 0))
            events.append(TraceEvent(fileID: file, kind: .read, pid: 1, tid: 1, uid: 0, epoch: index < 5 ? 0 : 1, wallNanoseconds: time + 10,
                                     monotonicNanoseconds: UInt64(time + 10), offset: 0, length: 100, durationNanoseconds: 1_000))
        }
        try store.write(files: files(10), events: events[...], runID: run)
        let report = try RunReport.load(store: store)
        #expect(report.run.id == run)
        #expect(report.epochs.map(\.reads) == [5, 5])
    }

    @Test("per-epoch fates are the differences of the ledger's counters at the engine's epoch boundaries")
    func epochFigures() {
        var first = LedgerCounters(), second = LedgerCounters(), final = LedgerCounters()
        first.accesses = 100; first.coldAccesses = 30; first.coveredAccesses = 50; first.issued = 90
        first.fates = [.useful: 50, .late: 10, .wasted: 5]
        second.accesses = 200; second.coldAccesses = 31; second.coveredAccesses = 140; second.issued = 180
        second.fates = [.useful: 140, .late: 10, .wasted: 6, .skipped: 3]
        final = second
        final.accesses = 250
        let figures = EpochFigures.split(
            marks: [.init(wallNanoseconds: 10, counters: first), .init(wallNanoseconds: 20, counters: second)], final: final)
        #expect(figures.map(\.epoch) == [1, 2, 3])
        #expect(figures.map(\.startedNanoseconds) == [nil, 10, 20])
        #expect(figures.map(\.accesses) == [100, 100, 50])
        #expect(figures.map(\.coldAccesses) == [30, 1, 0])
        #expect(figures.map(\.useful) == [50, 90, 0])
        #expect(figures.map(\.skipped) == [0, 3, 0])
        #expect(figures[0].accuracy == 50.0 / 65.0)
        #expect(figures[1].coverage == 0.9)
    }

    @Test("latency buckets are bounded by 1, 2 and 5 × powers of ten and hold every recorded value")
    func buckets() {
        var histogram = LatencyHistogram()
        #expect(histogram.buckets().isEmpty)
        for value: UInt64 in [500, 1_000, 1_500, 3_000_000, 3_000_000, 4_999_999, 7_000_000_000] { histogram.record(value) }
        let buckets = histogram.buckets()
        #expect(buckets.first == HistogramBucket(upToNanoseconds: 1_000, count: 2))
        #expect(buckets.contains(HistogramBucket(upToNanoseconds: 2_000, count: 1)))
        #expect(buckets.contains(HistogramBucket(upToNanoseconds: 5_000_000, count: 3)))
        #expect(buckets.last == HistogramBucket(upToNanoseconds: 10_000_000_000, count: 1))
        #expect(buckets.reduce(0) { $0 + $1.count } == 7)
    }

    @Test("chart axes end on a round value at or above the largest one")
    func ticks() {
        #expect(SVGChart.niceTicks(maximum: 0) == [0, 1])
        #expect(SVGChart.niceTicks(maximum: 9.3) == [0, 2, 4, 6, 8, 10])
        #expect(SVGChart.niceTicks(maximum: 0.2) == [0, 0.05, 0.1, 0.15000000000000002, 0.2])
        #expect(SVGChart.niceTicks(maximum: 1234).last == 1500)
        #expect(SVGChart.escape("a<b & \"c\"") == "a&lt;b &amp; &quot;c&quot;")
    }

    @Test("tick labels stay apart when the values are smaller than the axis format writes")
    func tickLabels() {
        func labels(_ maximum: Double) -> [String] {
            let svg = SVGChart.bars(categories: ["epoch 1"], series: [.init(name: "run", color: "#000", values: [maximum])],
                                    yLabel: "s", format: { Format.fixed($0, 2) })
            return svg.components(separatedBy: "class=\"tick\">").dropFirst().map { String($0.prefix { $0 != "<" }) }
                .filter { $0 != "epoch 1" }
        }
        // A stall of 7.5 ms: at two decimals the ticks would read 0.00, 0.00, 0.00, 0.01, 0.01.
        #expect(labels(0.0075) == ["0.000", "0.002", "0.004", "0.006", "0.008"])
        // Where the caller's format tells them apart, it stays.
        #expect(labels(9.3) == ["0.00", "2.00", "4.00", "6.00", "8.00", "10.00"])
        #expect(SVGChart.decimals([0, 0.05, 0.1]) == 2 && SVGChart.decimals([0, 0.1]) == 1 && SVGChart.decimals([0, 2]) == 0)
        // Histogram buckets are bounded by 1, 2 and 5 times powers of ten: whole numbers of a unit.
        #expect([500, 10_000_000, 200_000_000, 1_000_000_000, 10_000_000_000].map(ReportPage.bound) == ["500 ns", "10 ms", "200 ms", "1 s", "10 s"])
    }

    @Test("a store of schema version 1 is migrated: samples and results tables, run spans, version 3")
    func migration() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("v1.db")
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in
            for statement in StoreSchema.statements { try db.execute(sql: statement) }
            try db.execute(sql: "CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY)")
            try db.execute(sql: "INSERT INTO grdb_migrations VALUES ('v1')")
        }
        try queue.close()
        let store = try TraceStore(path: path)
        let run = try store.beginRun(command: "job", source: "run")
        let sample = StoredSample(wallNanoseconds: 5, epoch: 1, accesses: 2, coldAccesses: 1, coveredAccesses: 1, stallNanoseconds: 9,
                                  issued: 3, useful: 1, late: 1, wasted: 0, skipped: 1, failed: 0, bytesPrefetched: 100,
                                  outstandingBytes: 10, budgetBytes: 1_000, events: 7, eventsDropped: 0)
        try store.writeSample(sample, runID: run)
        try store.saveResult("{}", runID: run)
        #expect(try store.samples(runID: run) == [sample])
        #expect(try store.result(runID: run) == "{}")
        let version = try store.read { db in try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'schema_version'") }
        #expect(version == "3")
    }

    @Test("a run's events are its span of ids: interleaved runs, a migrated version-2 store, and one read without spans")
    func runSpans() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("v2.db")
        func events(_ count: Int, wall: Int64) -> ArraySlice<TraceEvent> {
            (0..<count).map {
                TraceEvent(fileID: 1, kind: $0 % 2 == 0 ? .open : .read, pid: 1, tid: 1, uid: 0, wallNanoseconds: wall + Int64($0),
                           monotonicNanoseconds: UInt64($0), offset: 0, length: 1, durationNanoseconds: 1)
            }[...]
        }
        // A version-2 store (index on run_id, no spans) with two runs.
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in
            for statement in StoreSchema.statements + StoreSchema.version2 { try db.execute(sql: statement) }
            try db.execute(sql: "CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY)")
            try db.execute(sql: "INSERT INTO grdb_migrations VALUES ('v1'), ('v2')")
            try db.execute(sql: "INSERT INTO runs (id, started_ns, command, source) VALUES (1, 0, 'a', 'test'), (2, 0, 'b', 'test')")
            try db.execute(sql: "INSERT INTO files (id, path, dev, ino, size, first_seen_ns) VALUES (1, '/data/x', 1, 1, 1, 0)")
            for (run, wall) in [(1, 100), (2, 200), (1, 300)] {
                for i in 0..<10 {
                    try db.execute(sql: """
                        INSERT INTO events (run_id, time_ns, mono_ns, pid, tid, uid, file_id, kind, offset, length, duration_ns, source, flags)
                        VALUES (?, ?, 0, 1, 1, 0, 1, 2, 0, 1, 1, 1, 0)
                        """, arguments: [run, wall + i])
                }
            }
        }
        try queue.close()
        // Read-only, it stays version 2 and answers by run_id.
        let old = try TraceStore(path: path, readOnly: true)
        #expect(!old.runSpans)
        #expect(try old.eventCount(runID: 1, kinds: [.read]) == 20)
        #expect(try old.eventSpan(runID: 2)! == (200, 209))
        // Opened to write, it is migrated: the index goes, each run's span is its ids.
        let store = try TraceStore(path: path)
        let spans = try store.read { db in try Row.fetchAll(db, sql: "SELECT run_id, first_event_id, last_event_id FROM run_spans ORDER BY run_id") }
        #expect(spans.map { [$0[0], $0[1], $0[2]] as [Int64] } == [[1, 1, 30], [2, 11, 20]])
        #expect(try store.read { db in try db.indexes(on: "events") }.isEmpty)
        // A third run writes in two transactions with a fourth between them; each run's figures are its own.
        let third = try store.beginRun(command: "c", source: "test")
        let fourth = try store.beginRun(command: "d", source: "test")
        try store.write(files: [], events: events(6, wall: 1_000), runID: third)
        try store.write(files: [], events: events(4, wall: 2_000), runID: fourth)
        try store.write(files: [], events: events(6, wall: 3_000), runID: third)
        #expect(try store.eventCount(runID: third, kinds: [.open, .read]) == 12)
        #expect(try store.eventCount(runID: fourth, kinds: [.open, .read]) == 4)
        #expect(try store.eventCount(runID: 1, kinds: [.read]) == 20)
        #expect(try store.eventSpan(runID: third)! == (1_000, 3_005))
        #expect(try store.eventSpan(runID: 2)! == (200, 209))
        let summary = try store.summary(top: 5)
        #expect(summary.runs.map(\.events) == [20, 10, 12, 4])
        #expect(try store.summary(top: 5, runID: third).events == 12)
        var replayed: [Int64] = []
        try store.replay(runID: fourth) { replayed.append($0.wallNanoseconds); return true }
        #expect(replayed == [2_000, 2_001, 2_002, 2_003])
        // The query reads the run's range of ids, not the table.
        let plan = try store.read { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM events WHERE \(store.runCondition(third))").map { $0["detail"] as String }
        }
        #expect(plan.contains { $0.contains("INTEGER PRIMARY KEY (rowid>? AND rowid<?)") }, "\(plan)")
    }

    @Test("stats over a time window: only its events, and each epoch's files with a cold read counted once")
    func statsWindow() throws {
        let directory = TemporaryDirectory()
        let store = try TraceStore(path: directory.file("traces.db"))
        let run = try store.beginRun(command: "job", source: "test")
        let timing = ReadTiming(baseNanoseconds: 1_000_000, warmBytesPerSecond: 1e9)
        let files = (1...4).map {
            FileRecord(id: FileID($0), path: "/data/\($0)", device: 1, inode: UInt64($0), size: 4_096, firstSeenWallNanoseconds: 0)
        }
        // Two untagged epochs of four files, one second apart: each file read twice, the
        // first read cold (5 ms) in files 1-3 of the first epoch and in file 4 of the second.
        var events: [TraceEvent] = []
        for (epoch, start): (Int, Int64) in [(0, 10_000_000_000), (1, 11_000_000_000)] {
            for file in files {
                let cold = epoch == 0 ? file.id <= 3 : file.id == 4
                for read in 0..<2 {
                    events.append(TraceEvent(fileID: file.id, kind: .read, pid: 1, tid: 1, uid: 0,
                                             wallNanoseconds: start + file.id * 1_000 + Int64(read),
                                             monotonicNanoseconds: 1, offset: UInt64(read) * 2_048, length: 2_048,
                                             durationNanoseconds: cold && read == 0 ? 5_000_000 : 10_000))
                }
            }
        }
        try store.write(files: files, events: events[...], runID: run)
        let whole = try store.summary(top: 0, timing: timing)
        #expect(whole.epochs.count == 1 && whole.epochs[0].reads == 16)
        #expect(whole.epochs[0].coldReads == 4 && whole.epochs[0].coldFiles == 4)
        let first = try store.summary(top: 0, window: 10_000_000_000..<11_000_000_000, timing: timing)
        #expect(first.events == 8 && first.runs.map(\.events) == [8])
        #expect(first.epochs.map(\.coldReads) == [3] && first.epochs.map(\.coldFiles) == [3] && first.epochs.map(\.files) == [4])
        let second = try store.summary(top: 0, window: 11_000_000_000..<Int64.max, timing: timing)
        #expect(second.epochs.map(\.coldFiles) == [1] && second.epochs.map(\.stallNanoseconds) == [5_000_000])
        #expect(try store.summary(top: 0, window: 0..<10_000_000_000, timing: timing).events == 0)
    }
}
